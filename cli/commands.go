package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var storageKind = objectKind[api.StorageRequest, api.Storage]{
	noun: "storages", singular: "storage", aliases: []string{"storage"},
	coll: (*api.Client).Storages, meta: func(o *api.Storage) api.Meta { return o.Meta }, name: func(o *api.Storage) string { return o.Name },
	header: []string{"ID", "NAME", "KIND", "LOCATION", "VERSION"},
	row: func(s api.Storage) []any {
		loc := s.Path
		if s.Kind == api.StorageS3 {
			loc = "s3://" + s.Bucket + "/" + s.Prefix
		}
		return []any{s.ID, s.Name, s.Kind, loc, s.Version}
	},
	specHelp: "a storage spec: name, kind (filesystem or s3), path, or bucket, prefix, region, endpoint and credentials.",
}

var policyKind = objectKind[api.PolicyRequest, api.Policy]{
	noun: "policies", singular: "policy", aliases: []string{"policy"},
	coll: (*api.Client).Policies, meta: func(o *api.Policy) api.Meta { return o.Meta }, name: func(o *api.Policy) string { return o.Name },
	header: []string{"ID", "NAME", "TIMEZONE", "FULL", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"},
	row: func(p api.Policy) []any {
		full := strings.Join(p.Full.DaysOfWeek, ",")
		if p.Full.DayOfMonth != 0 {
			full = fmt.Sprintf("day %d", p.Full.DayOfMonth)
		}
		r := p.Retention
		return []any{p.ID, p.Name, p.Timezone, full + " " + p.Full.At, r.DailyDays, r.WeeklyWeeks, r.MonthlyMonths, r.YearlyYears}
	},
	specHelp: "a backup policy spec: name, timezone, full and incremental schedules, retention.",
}

var fileServerKind = objectKind[api.FileServerRequest, api.FileServer]{
	noun: "file-servers", singular: "file server", aliases: []string{"file-server"},
	coll: (*api.Client).FileServers, meta: func(o *api.FileServer) api.Meta { return o.Meta }, name: func(o *api.FileServer) string { return o.Name },
	header: []string{"ID", "NAME", "HOSTNAME", "OS", "LOCATION", "AGENT"},
	row: func(f api.FileServer) []any {
		return []any{f.ID, f.Name, f.Hostname, f.OS, f.Location, f.AgentStatus}
	},
	specHelp: "a file server spec: name, hostname, os, location (server or agent), group, restore_roots.",
	afterCreate: func(e *clientEnv, f *api.FileServer) {
		fmt.Fprintf(e.out, "file server %s (%s) created\n", f.Name, f.ID)
		if f.ActivationToken != "" {
			fmt.Fprintf(e.out, "activation token (shown once; give it to the agent as --activation-token):\n%s\n", f.ActivationToken)
		}
	},
}

var filesetKind = objectKind[api.FilesetRequest, api.Fileset]{
	noun: "filesets", singular: "fileset", aliases: []string{"fileset"},
	coll: (*api.Client).Filesets, meta: func(o *api.Fileset) api.Meta { return o.Meta }, name: func(o *api.Fileset) string { return o.Name },
	header: []string{"ID", "NAME", "PATHS", "GROUP"},
	row: func(f api.Fileset) []any {
		return []any{f.ID, f.Name, strings.Join(f.IncludePaths, ","), f.Group}
	},
	specHelp: "a fileset spec: name, file_server_id, include_paths, exclude_globs, policy_id, storage_id, group.",
}

var vcenterKind = objectKind[api.VCenterRequest, api.VCenter]{
	noun: "vcenters", singular: "vCenter", aliases: []string{"vcenter"},
	coll: (*api.Client).VCenters, meta: func(o *api.VCenter) api.Meta { return o.Meta }, name: func(o *api.VCenter) string { return o.Name },
	header: []string{"ID", "NAME", "URL", "USERNAME", "STATUS"},
	row: func(v api.VCenter) []any {
		return []any{v.ID, v.Name, v.URL, v.Username, v.Status}
	},
	specHelp: "a vCenter spec: name, url, username, password, thumbprint or ca_pem or insecure, group.",
}

var awsTargetKind = objectKind[api.AWSTargetRequest, api.AWSTarget]{
	noun: "aws-targets", singular: "AWS target", aliases: []string{"aws-target"},
	coll: (*api.Client).AWSTargets, meta: func(o *api.AWSTarget) api.Meta { return o.Meta }, name: func(o *api.AWSTarget) string { return o.Name },
	header: []string{"ID", "NAME", "REGION", "ACCOUNT", "CREDENTIALS", "VPC", "STATUS"},
	row: func(a api.AWSTarget) []any {
		return []any{a.ID, a.Name, a.Region, a.AccountID, a.Credentials, a.VPCID, a.Status}
	},
	specHelp: "an AWS target spec: name, region, credentials (ambient, access_key or assume_role), access_key_id, secret_access_key, " +
		"role_arn, external_id, endpoint, vpc_id, subnet_id, security_group_ids, group.",
}

var drPlanKind = objectKind[api.DRPlanRequest, api.DRPlan]{
	noun: "dr-plans", singular: "DR plan", aliases: []string{"dr-plan"},
	coll: (*api.Client).DRPlans, meta: func(o *api.DRPlan) api.Meta { return o.Meta }, name: func(o *api.DRPlan) string { return o.Name },
	header: []string{"ID", "NAME", "TARGET", "VMS", "INTERVAL", "LATE", "LAST REPLICATION"},
	row: func(p api.DRPlan) []any {
		late := 0
		for _, v := range p.Status.VMs {
			if v.Late {
				late++
			}
		}
		last := "-"
		if j := p.Status.LastReplicationJob; j != nil {
			last = j.State
		}
		return []any{p.ID, p.Name, p.TargetID, len(p.VMs), fmt.Sprintf("%dm", p.ReplicationIntervalMinutes), late, last}
	},
	specHelp: "a DR plan spec: name, target_id, replication_interval_minutes, vms (protected_vm_id, name, instance_type, subnet_id, " +
		"private_ip, security_group_ids, tags, boot_group, depends_on, user_data, probe_port), test_network (vpc_id, subnet_id, " +
		"security_group_ids), group.",
}

var protectedVMKind = objectKind[api.ProtectedVMRequest, api.ProtectedVM]{
	noun: "protected-vms", singular: "protected VM", aliases: []string{"protected-vm"},
	coll: (*api.Client).ProtectedVMs, meta: func(o *api.ProtectedVM) api.Meta { return o.Meta }, name: func(o *api.ProtectedVM) string { return o.Name },
	find:     findProtectedVM,
	specHelp: "a protected VM spec: vcenter_id, instance_uuid, policy_id, storage_id, exclude_disks, app_consistent, guest credentials.",
}

var vmRuleKind = objectKind[api.VMProtectionRuleRequest, api.VMProtectionRule]{
	noun: "vm-rules", singular: "VM protection rule", aliases: []string{"vm-rule", "vm-protection-rules"},
	coll: (*api.Client).VMProtectionRules, meta: func(o *api.VMProtectionRule) api.Meta { return o.Meta },
	name:   func(o *api.VMProtectionRule) string { return o.Name },
	header: []string{"ID", "NAME", "VCENTER ID", "FOLDERS", "TAGS", "NAME REGEX", "SELECTED"},
	row: func(r api.VMProtectionRule) []any {
		return []any{r.ID, r.Name, r.VCenterID, strings.Join(r.Folders, ","), strings.Join(r.Tags, ","), r.NameRegex, r.SelectedCount}
	},
	specHelp: "a VM protection rule spec: name, vcenter_id, folders, tags, name_regex, exclusions, policy_id, storage_id.",
}

var databaseServerKind = objectKind[api.DatabaseServerRequest, api.DatabaseServer]{
	noun: "database-servers", singular: "database server", aliases: []string{"database-server", "db-servers"},
	coll: (*api.Client).DatabaseServers, meta: func(o *api.DatabaseServer) api.Meta { return o.Meta },
	name:   func(o *api.DatabaseServer) string { return o.Name },
	header: []string{"ID", "NAME", "ENGINE", "HOST", "DATA DIR", "LOGS"},
	row: func(d api.DatabaseServer) []any {
		dir, logs := "", ""
		if d.Detected != nil {
			dir, logs = d.Detected.DataDir, "archived"
			if d.Detected.LogRefusal != "" {
				logs = "refused: " + d.Detected.LogRefusal
			}
		}
		return []any{d.ID, d.Name, d.Engine, d.Host, dir, logs}
	},
	specHelp: "a database server spec: name, file_server_id (the agent of its host), engine (postgresql), host, port, user, database, password, group.",
}

var databaseSetKind = objectKind[api.DatabaseSetRequest, api.DatabaseSet]{
	noun: "database-sets", singular: "database set", aliases: []string{"database-set", "db-sets"},
	coll: (*api.Client).DatabaseSets, meta: func(o *api.DatabaseSet) api.Meta { return o.Meta },
	name:   func(o *api.DatabaseSet) string { return o.Name },
	header: []string{"ID", "NAME", "DATABASE SERVER ID", "VERIFY", "GROUP"},
	row: func(d api.DatabaseSet) []any {
		return []any{d.ID, d.Name, d.DatabaseServerID, d.VerifyRestore, d.Group}
	},
	specHelp: "a database set spec: name, database_server_id, policy_id, storage_id, verify_restore, group.",
}

var nasDeviceKind = objectKind[api.NASDeviceRequest, api.NASDevice]{
	noun: "nas-devices", singular: "NAS device", aliases: []string{"nas-device"},
	coll: (*api.Client).NASDevices, meta: func(o *api.NASDevice) api.Meta { return o.Meta },
	name:   func(o *api.NASDevice) string { return o.Name },
	header: []string{"ID", "NAME", "HOST", "PROTOCOLS", "PROXIES", "SMB SECRET", "GROUP"},
	row: func(d api.NASDevice) []any {
		secret := ""
		switch {
		case d.HasSMBPassword:
			secret = "password"
		case d.HasSMBKeytab:
			secret = "keytab"
		}
		return []any{d.ID, d.Name, d.Host, strings.Join(d.Protocols, ","), len(d.ProxyFileServerIDs), secret, d.Group}
	},
	specHelp: "a NAS device spec: name, host (optionally host:port, the SMB port), protocols (smb, nfs), smb_user, smb_domain, " +
		"smb_password or smb_kerberos_keytab (base64 of a keytab file), nfs_uid, nfs_gid, nfs_port, nfs_mount_port, " +
		"proxy_file_server_ids (agent file servers), group.\nThe SMB secret is only ever read from the file (or stdin): keep the file " +
		"private. An update whose file has neither smb_password nor smb_kerberos_keytab keeps the stored one.",
}

var nasShareKind = objectKind[api.NASShareRequest, api.NASShare]{
	noun: "nas-shares", singular: "NAS share", aliases: []string{"nas-share"},
	coll: (*api.Client).NASShares, meta: func(o *api.NASShare) api.Meta { return o.Meta },
	name:   func(o *api.NASShare) string { return o.Name },
	header: []string{"ID", "NAME", "NAS DEVICE ID", "PROTOCOL", "SHARE", "PATH", "GROUP"},
	row: func(s api.NASShare) []any {
		return []any{s.ID, s.Name, s.NASDeviceID, s.Protocol, s.Share, s.Path, s.Group}
	},
	specHelp: "a NAS share spec: name, nas_device_id, protocol (smb or nfs), share (an SMB share's name or an NFS export's path), " +
		"path (a directory inside the share), include, exclude, policy_id, storage_id.",
}

func storageCommands(e *clientEnv) *cobra.Command {
	noun := storageKind.commands(e)
	// Deleting a storage answers what it destroyed.
	replace(noun, &cobra.Command{
		Use: "delete ID|NAME", Short: "delete a storage; one that holds recovery points needs force_destroy, and then loses them",
		Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: storageKind.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := e.client.Storages().Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			gone, err := e.client.DeleteStorage(cmd.Context(), s.ID)
			if err != nil || gone == nil {
				return err
			}
			if e.output != "table" {
				return e.show(gone, nil)
			}
			fmt.Fprintf(e.out, "storage %s deleted: %s\n", s.Name, gone.Message)
			return nil
		},
	})
	for _, m := range []struct{ verb, kind, short string }{
		{"verify", api.JobVerify, "queue a verify of every pack a storage holds"},
		{"gc", api.JobGC, "queue a garbage collection of a storage"},
	} {
		var w waitFlags
		c := &cobra.Command{
			Use: m.verb + " ID|NAME", Short: m.short, Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: storageKind.complete,
			RunE: func(cmd *cobra.Command, args []string) error {
				st, err := e.client.Storages().Get(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				var j api.Job
				if err := e.client.Do(cmd.Context(), "POST", "/v1/storages/"+st.ID+"/"+m.verb, nil, struct{}{}, &j); err != nil {
					return err
				}
				return e.finishJob(cmd.Context(), &j, w)
			},
		}
		w.add(c)
		noun.AddCommand(c)
	}
	noun.AddCommand(storagesImportCommand(e))
	return noun
}

func policyCommands(e *clientEnv) *cobra.Command {
	noun := policyKind.commands(e)
	var file string
	preview := &cobra.Command{
		Use:   "preview ID|NAME [-f FILE]",
		Short: "preview what a policy change would expire, before applying it",
		Long: "Preview the retention of a policy: how many recovery points a new spec (-f, JSON or YAML) would expire " +
			"or move between tiers. Without -f, the policy's current spec is previewed.",
		Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: policyKind.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := e.client.Policies().Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			spec := p.PolicySpec
			if file != "" {
				var req api.PolicyRequest
				if err := readSpec(file, &req); err != nil {
					return err
				}
				spec = req.PolicySpec
			}
			pv, err := e.client.PreviewRetention(cmd.Context(), p.ID, spec)
			if err != nil || e.output != "table" {
				return e.show(pv, err)
			}
			fmt.Fprintln(e.out, pv.Summary())
			fmt.Fprintf(e.out, "moves %d points to cold and %d to warm storage\n", pv.ToCold, pv.ToWarm)
			for _, id := range pv.PointIDs {
				fmt.Fprintln(e.out, "  expires", id)
			}
			return nil
		},
	}
	preview.Flags().StringVarP(&file, "file", "f", "", "JSON or YAML file with the new policy spec; - reads stdin")
	_ = preview.MarkFlagFilename("file", "json", "yaml", "yml")
	noun.AddCommand(preview)
	return noun
}

func fileServerCommands(e *clientEnv) *cobra.Command {
	noun := fileServerKind.commands(e)
	var replace bool
	activation := &cobra.Command{
		Use:   "activation ID|NAME",
		Short: "show the one-time activation token for an agent file server's agent",
		Long: "Show the one-time activation token for the agent of a file server of location agent, for " +
			"haven agent --activation-token. While the token is unused and unexpired (24 hours after it was " +
			"issued), every call shows the same one; after that a new one is issued. --replace issues a new " +
			"one at once and the earlier one stops working (for a token that may have leaked). An agent " +
			"already activated keeps working until an agent activates with the new token, which revokes its credential.",
		Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: fileServerKind.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := e.client.IssueActivation(cmd.Context(), args[0], replace)
			if err != nil {
				return err
			}
			if e.output != "table" {
				return e.show(a, nil)
			}
			fmt.Fprintf(e.out, "activation token (give it to the agent as --activation-token; valid until %s or its first use):\n%s\n",
				a.ExpiresAt.UTC().Format(time.RFC3339), a.ActivationToken)
			return nil
		},
	}
	activation.Flags().BoolVar(&replace, "replace", false, "issue a new token; the one issued before stops working")
	noun.AddCommand(activation)
	return noun
}

func filesetCommands(e *clientEnv) *cobra.Command        { return filesetKind.commands(e) }
func vmRuleCommands(e *clientEnv) *cobra.Command         { return vmRuleKind.commands(e) }
func databaseServerCommands(e *clientEnv) *cobra.Command { return databaseServerKind.commands(e) }
func databaseSetCommands(e *clientEnv) *cobra.Command    { return databaseSetKind.commands(e) }
func awsTargetCommands(e *clientEnv) *cobra.Command      { return awsTargetKind.commands(e) }
func nasDeviceCommands(e *clientEnv) *cobra.Command      { return nasDeviceKind.commands(e) }
func nasShareCommands(e *clientEnv) *cobra.Command       { return nasShareKind.commands(e) }

func drPlanCommands(e *clientEnv) *cobra.Command {
	noun := drPlanKind.commands(e)
	var w waitFlags
	replicate := &cobra.Command{
		Use:   "replicate ID|NAME",
		Short: "queue a replication of a DR plan now (its VMs' newest points to EBS snapshots)",
		Long: "Queue a replication of a DR plan now: each VM whose newest recovery point is not its copy in AWS yet is copied,\n" +
			"incrementally from its copy. While one is queued or running, that job is the answer.\n" +
			"With --wait, follow it to its end (exit 1 unless it succeeded).\n\n" + exitCodesHelp,
		Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: drPlanKind.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := drPlanKind.lookup(cmd.Context(), e.client, args[0])
			if err != nil {
				return err
			}
			j, err := e.client.ReplicateDRPlan(cmd.Context(), p.ID)
			if err != nil {
				return err
			}
			return e.finishJob(cmd.Context(), j, w)
		},
	}
	w.add(replicate)
	noun.AddCommand(replicate)
	noun.AddCommand(drPlanRunCommands(e)...)
	return noun
}

func vcenterCommands(e *clientEnv) *cobra.Command {
	noun := vcenterKind.commands(e)
	var f api.VMFilter
	vms := &cobra.Command{
		Use: "vms ID|NAME", Short: "list a vCenter's VMs (--folder, --tag, --name-regex filter)",
		Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: vcenterKind.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := e.client.VCenters().Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			items, err := e.client.VMs(cmd.Context(), v.ID, f)
			if err != nil {
				return err
			}
			return printTable(e, items, []string{"NAME", "INSTANCE UUID", "FOLDER", "POWER", "DISKS", "TAGS"}, func(vm api.VM) []any {
				return []any{vm.Name, vm.InstanceUUID, vm.Folder, vm.PowerState, len(vm.Disks), strings.Join(vm.Tags, ",")}
			})
		},
	}
	vms.Flags().StringVar(&f.Folder, "folder", "", "only VMs in this inventory folder or below")
	vms.Flags().StringVar(&f.Tag, "tag", "", "only VMs with this category:tag")
	vms.Flags().StringVar(&f.NameRegex, "name-regex", "", "only VMs whose name matches")
	noun.AddCommand(vms)
	return noun
}

func protectedVMCommands(e *clientEnv) *cobra.Command {
	noun := protectedVMKind.commands(e)
	replace(noun, &cobra.Command{
		Use: "list", Short: "list protected VMs", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			items, err := e.client.ProtectedVMs().ListAll(ctx)
			if err != nil {
				return err
			}
			vcenters, err := e.client.VCenters().ListAll(ctx)
			if err != nil {
				return err
			}
			vcName := map[string]string{}
			for _, v := range vcenters {
				vcName[v.ID] = v.Name
			}
			return printTable(e, items, []string{"ID", "NAME", "VCENTER", "INSTANCE UUID", "STATUS", "GROUP"}, func(p api.ProtectedVM) []any {
				return []any{p.ID, p.Name, vcName[p.VCenterID], p.InstanceUUID, p.Status, p.Group}
			})
		},
	}, &cobra.Command{
		Use:   "delete ID|VM",
		Short: "stop protecting a VM, by id, VM name or instance UUID; its recovery points stay restorable until their retention ends",
		Args:  usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: protectedVMKind.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := findProtectedVM(cmd.Context(), e.client, args[0])
			if err != nil {
				return err
			}
			if err := e.client.ProtectedVMs().Delete(cmd.Context(), p.ID); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "protected VM %s (%s) deleted; its recovery points stay restorable until their retention ends\n", p.Name, p.ID)
			return nil
		},
	})
	show, _, _ := noun.Find([]string{"show"})
	show.Use, show.Short = "show ID|VM", "show one protected VM, by id, VM name or instance UUID"
	return noun
}

// replace swaps verbs of a noun for ones of the same name.
func replace(noun *cobra.Command, verbs ...*cobra.Command) {
	for _, v := range verbs {
		if old, _, err := noun.Find([]string{v.Name()}); err == nil && old != noun {
			noun.RemoveCommand(old)
		}
		noun.AddCommand(v)
	}
}

func pointCommands(e *clientEnv) *cobra.Command {
	noun := group("points", "list, show and browse recovery points (ls, find, diff, dump), set and clear legal holds", "point")
	var kind, since, until string
	list := &cobra.Command{
		Use: "list [ASSET]", Short: "list recovery points, newest first; ASSET is a fileset or protected VM, by id or name",
		Args: usageArgs(cobra.MaximumNArgs(1)), ValidArgsFunction: completeAssets,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var f api.PointFilter
			if len(args) > 0 {
				var err error
				if f.AssetID, err = assetFilter(ctx, e.client, args[0]); err != nil {
					return err
				}
			}
			f.Kind = kind
			if err := timeRange(since, until, &f.CreatedAfter, &f.CreatedBefore); err != nil {
				return err
			}
			var all []api.Point
			token := ""
			for {
				page, err := e.client.FindPoints(ctx, f, token, 0)
				if err != nil {
					return err
				}
				all = append(all, page.Items...)
				if token = page.NextPageToken; token == "" {
					break
				}
			}
			return printTable(e, all, []string{"ID", "ASSET", "ASSET ID", "KIND", "COMPLETED", "FILES", "LOGICAL", "NEW", "HOLD"}, func(p api.Point) []any {
				name := p.AssetName
				if p.AssetDeleted {
					name += " (deleted)"
				}
				hold := "-"
				if p.LegalHold {
					hold = "legal hold"
				}
				return []any{p.ID, name, p.AssetID, p.Kind, p.CompletedAt.Local().Format(time.RFC3339), p.Files, humanBytes(p.LogicalBytes), humanBytes(p.NewBytes), hold}
			})
		},
	}
	choiceFlag(list, &kind, "kind", "only points of this kind", api.BackupFull, api.BackupIncremental, api.BackupDifferential, api.BackupLog)
	list.Flags().StringVar(&since, "since", "", "only points made at or after this time (RFC 3339, or a duration ago such as 24h)")
	list.Flags().StringVar(&until, "until", "", "only points made before this time (RFC 3339, or a duration ago)")
	show := &cobra.Command{
		Use: "show POINT", Short: "show one recovery point", Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: completePoints,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.show(e.client.GetPoint(cmd.Context(), args[0]))
		},
	}
	hold := group("legal-hold", "set or clear a point's legal hold, which keeps it whatever its retention")
	for _, h := range []struct {
		verb, short string
		on          bool
	}{{"set", "put a recovery point on legal hold: kept until the hold is cleared", true},
		{"clear", "clear a recovery point's legal hold: its retention applies again", false}} {
		hold.AddCommand(&cobra.Command{
			Use: h.verb + " POINT", Short: h.short, Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: completePoints,
			RunE: func(cmd *cobra.Command, args []string) error {
				p, err := e.client.SetLegalHold(cmd.Context(), args[0], h.on)
				if err != nil || e.output != "table" {
					return e.show(p, err)
				}
				state := "cleared"
				if p.LegalHold {
					state = "set"
				}
				fmt.Fprintf(e.out, "point %s: legal hold %s\n", p.ID, state)
				return nil
			},
		})
	}
	noun.AddCommand(list, show, hold)
	noun.AddCommand(browseCommands(e)...)
	return noun
}

var (
	jobStates = []string{api.JobQueued, api.JobRunning, api.JobSucceeded, api.JobFailed, api.JobCanceled, api.JobSkipped}
	jobKinds  = []string{api.JobBackup, api.JobRestore, api.JobRestorePlan, api.JobVerify, api.JobGC, api.JobImport,
		api.JobDRReplicate, api.JobDRFailover, api.JobDRTest, api.JobDRCleanup, api.JobDRFailback}
)

func jobCommands(e *clientEnv) *cobra.Command {
	noun := group("jobs", "list, show, cancel and wait for jobs", "job")
	var asset, state, kind string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "list jobs, newest first (--asset, --state, --kind filter)", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := api.JobFilter{State: state, Kind: kind}
			if asset != "" {
				var err error
				if f.AssetID, err = assetFilter(cmd.Context(), e.client, asset); err != nil {
					return err
				}
			}
			page, err := e.client.ListJobs(cmd.Context(), f, "", limit)
			if err != nil {
				return err
			}
			return printTable(e, page.Items, []string{"ID", "KIND", "STATE", "TRIGGER", "CREATED", "FILES", "BYTES", "ERROR"}, func(j api.Job) []any {
				return []any{j.ID, j.Kind, j.State, j.Trigger, j.CreatedAt.Local().Format(time.RFC3339), j.Progress.FilesDone, humanBytes(j.Progress.BytesDone), j.Error}
			})
		},
	}
	list.Flags().StringVar(&asset, "asset", "", "only jobs of this asset: a fileset or protected VM, by id or name")
	_ = list.RegisterFlagCompletionFunc("asset", assetNames)
	choiceFlag(list, &state, "state", "only jobs in this state", jobStates...)
	choiceFlag(list, &kind, "kind", "only jobs of this kind", jobKinds...)
	list.Flags().IntVar(&limit, "limit", 100, "at most this many jobs")
	byID := func(use, short string, run func(ctx context.Context, id string) error) *cobra.Command {
		return &cobra.Command{Use: use + " JOB", Short: short, Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: completeJobs,
			RunE: func(cmd *cobra.Command, args []string) error { return run(cmd.Context(), args[0]) }}
	}
	var w waitFlags
	wait := byID("wait", "wait until a job finishes, showing its progress; exit 1 unless it succeeded", func(ctx context.Context, id string) error {
		j, err := e.client.GetJob(ctx, id)
		if err != nil {
			return err
		}
		w.wait = true
		return e.finishJob(ctx, j, w)
	})
	w.addProgress(wait)
	noun.AddCommand(list,
		byID("show", "show one job", func(ctx context.Context, id string) error { return e.show(e.client.GetJob(ctx, id)) }),
		byID("cancel", "cancel a job", func(ctx context.Context, id string) error { return e.show(e.client.CancelJob(ctx, id)) }),
		wait)
	return noun
}

func backupCommands(e *clientEnv) *cobra.Command {
	noun := group("backup", "back up an asset now")
	var w waitFlags
	var full bool
	var kind string
	now := &cobra.Command{
		Use:   "now ASSET",
		Short: "queue a backup of an asset now: a fileset, a database set, a NAS share (id or name) or a protected VM (id, VM name or instance UUID)",
		Long: "Queue a backup of an asset now: a fileset, a database set, a NAS share (id or name) or a protected VM (id, VM name or instance UUID).\n" +
			"It is full if the asset has no recovery point yet (or with --full), incremental otherwise; a database set's is a\n" +
			"differential (a full while it has none), and --type full|differential|log asks for one kind.\n" +
			"With --wait, follow it to its end (exit 1 unless it succeeded).\n\n" + exitCodesHelp,
		Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: completeAssets,
		RunE: func(cmd *cobra.Command, args []string) error {
			assetID, err := findAsset(cmd.Context(), e.client, args[0])
			if err != nil {
				return err
			}
			req := api.BackupRequest{Type: kind}
			if full {
				req.Type = api.BackupFull
			}
			j, err := e.client.Backup(cmd.Context(), assetID, req)
			if err != nil {
				return err
			}
			return e.finishJob(cmd.Context(), j, w)
		},
	}
	now.Flags().BoolVar(&full, "full", false, "read and store everything again instead of only what changed since the latest point")
	choiceFlag(now, &kind, "type", "the kind of backup (a database set's: full, differential or log)", api.BackupFull, api.BackupIncremental, api.BackupDifferential, api.BackupLog)
	w.add(now)
	noun.AddCommand(now)
	return noun
}

func tokenCommands(e *clientEnv) *cobra.Command {
	noun := group("tokens", "manage API tokens (admin)", "token")
	list := &cobra.Command{
		Use: "list", Short: "list API tokens (admin)", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := listTokens(cmd.Context(), e.client)
			if err != nil {
				return err
			}
			return printTable(e, all, []string{"ID", "NAME", "ROLE", "GROUPS", "EXPIRES", "LAST USED", "REVOKED"}, func(t api.Token) []any {
				return []any{t.ID, t.Name, t.Role, strings.Join(t.Groups, ","), timeOrDash(t.ExpiresAt, "never"), timeOrDash(t.LastUsedAt, "never"), timeOrDash(t.RevokedAt, "no")}
			})
		},
	}
	var ttl, expires string
	create := &cobra.Command{
		Use:   "create NAME ROLE [GROUP...]",
		Short: "create an API token and print its secret once (admin); --ttl 30d or --expires TIME makes it expire",
		Args:  usageArgs(cobra.MinimumNArgs(2)),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return []cobra.Completion{"admin", "operator", "group_admin", "read_only"}, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.TokenRequest{Name: args[0], Role: args[1], Groups: args[2:], TTL: ttl}
			if expires != "" {
				at, err := time.Parse(time.RFC3339, expires)
				if err != nil {
					return usageErrorf("--expires %q: want an RFC 3339 time such as 2027-01-01T00:00:00Z", expires)
				}
				req.ExpiresAt = &at
			}
			t, err := e.client.CreateToken(cmd.Context(), req)
			if err != nil || e.output != "table" {
				return e.show(t, err)
			}
			fmt.Fprintln(e.out, t.Secret)
			return nil
		},
	}
	create.Flags().StringVar(&ttl, "ttl", "", "the token expires this long after creation (12h, 90m, 30d)")
	create.Flags().StringVar(&expires, "expires", "", "the token expires at this RFC 3339 time")
	create.MarkFlagsMutuallyExclusive("ttl", "expires")
	revoke := &cobra.Command{
		Use: "revoke ID|NAME", Short: "revoke an API token (admin)", Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: completeTokens,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := findToken(cmd.Context(), e.client, args[0])
			if err != nil {
				return err
			}
			if err := e.client.RevokeToken(cmd.Context(), id); err != nil {
				return err
			}
			if e.output == "table" {
				fmt.Fprintf(e.out, "token %s revoked\n", id)
			}
			return nil
		},
	}
	noun.AddCommand(list, create, revoke)
	return noun
}

func listTokens(ctx context.Context, c *api.Client) ([]api.Token, error) {
	var all []api.Token
	token := ""
	for {
		page, err := c.ListTokens(ctx, token, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if token = page.NextPageToken; token == "" {
			return all, nil
		}
	}
}

// findToken resolves a token's id from its id or its name; a name that
// several tokens share is refused.
func findToken(ctx context.Context, c *api.Client, ref string) (string, error) {
	if uuidPattern.MatchString(ref) {
		return ref, nil
	}
	all, err := listTokens(ctx, c)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, t := range all {
		if t.Name == ref && t.RevokedAt == nil {
			ids = append(ids, t.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("no live token is named %q (haven tokens list shows them)", ref)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("%d tokens are named %q: give one of the ids %s", len(ids), ref, strings.Join(ids, ", "))
}

func auditCommands(e *clientEnv) *cobra.Command {
	noun := group("audit", "read the audit log of API writes (admin)")
	var tokenID, object, method, since, until, pageToken string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "list the audit log of API writes, newest first (admin); --token-id, --object, --method, --since, --until filter, --limit and --page-token page",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := api.AuditFilter{TokenID: tokenID, ObjectID: object, Method: method}
			if err := timeRange(since, until, &f.Since, &f.Until); err != nil {
				return err
			}
			page, err := e.client.ListAudit(cmd.Context(), f, pageToken, limit)
			if err != nil {
				return err
			}
			if err := printTable(e, page.Items, []string{"TIME", "TOKEN", "ROLE", "METHOD", "ROUTE", "OBJECT", "FROM", "STATUS"}, func(a api.AuditEntry) []any {
				who := a.TokenName
				if who == "" {
					who = "-"
				}
				return []any{a.At.Local().Format(time.RFC3339), who, a.Role, a.Method, a.Route, a.ObjectID, a.RemoteAddr, a.Status}
			}); err != nil {
				return err
			}
			if page.NextPageToken != "" && e.output == "table" {
				fmt.Fprintf(e.out, "more: --page-token %s\n", page.NextPageToken)
			}
			return nil
		},
	}
	fl := list.Flags()
	fl.StringVar(&tokenID, "token-id", "", "only writes made with this token id")
	fl.StringVar(&object, "object", "", "only writes naming this object id")
	choiceFlag(list, &method, "method", "only writes with this HTTP method", "POST", "PUT", "DELETE")
	fl.StringVar(&since, "since", "", "only writes at or after this time (RFC 3339, or a duration ago such as 24h)")
	fl.StringVar(&until, "until", "", "only writes before this time (RFC 3339, or a duration ago)")
	fl.IntVar(&limit, "limit", 0, "at most this many entries (default 100)")
	fl.StringVar(&pageToken, "page-token", "", "continue from a previous listing")
	noun.AddCommand(list)
	return noun
}

// agentCommands shows the agents through their file servers: the API
// keeps an agent's state on the file server it enrolled for.
func agentCommands(e *clientEnv) *cobra.Command {
	noun := group("agents", "show the agents of file servers", "agent-status")
	noun.AddCommand(&cobra.Command{
		Use: "list", Short: "list the file servers' agents: status and last contact", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, err := e.client.FileServers().ListAll(cmd.Context())
			if err != nil {
				return err
			}
			var agents []api.FileServer
			for _, f := range items {
				if f.Location != "server" {
					agents = append(agents, f)
				}
			}
			return printTable(e, agents, []string{"FILE SERVER", "ID", "HOSTNAME", "OS", "STATUS", "LAST SEEN"}, func(f api.FileServer) []any {
				return []any{f.Name, f.ID, f.Hostname, f.OS, f.AgentStatus, timeOrDash(f.AgentLastSeen, "never")}
			})
		},
	})
	return noun
}

func whoamiCommand(e *clientEnv) *cobra.Command {
	return &cobra.Command{
		Use: "whoami", Short: "show the token in use", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var t api.Token
			err := e.client.Do(cmd.Context(), "GET", "/v1/whoami", nil, nil, &t)
			return e.show(t, err)
		},
	}
}

// assetFilter resolves an asset for a filter. An id that names no current
// asset is kept as is: the jobs and points of a deleted asset outlive it.
func assetFilter(ctx context.Context, c *api.Client, ref string) (string, error) {
	id, err := findAsset(ctx, c, ref)
	if err != nil && uuidPattern.MatchString(ref) && errors.Is(err, errNoAsset) {
		return ref, nil
	}
	return id, err
}

// timeRange reads the --since and --until flags of a listing into its
// filter.
func timeRange(since, until string, from, to **time.Time) error {
	for _, tf := range []struct {
		flag, value string
		into        **time.Time
	}{{"--since", since, from}, {"--until", until, to}} {
		if tf.value == "" {
			continue
		}
		at, err := timeOrAgo(tf.value, time.Now())
		if err != nil {
			return usageErrorf("%s: %v", tf.flag, err)
		}
		*tf.into = &at
	}
	return nil
}
