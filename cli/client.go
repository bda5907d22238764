package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/spf13/cobra"
)

// timeOrDash prints an optional time, or what its absence means.
func timeOrDash(t *time.Time, absent string) string {
	if t == nil {
		return absent
	}
	return t.Local().Format(time.RFC3339)
}

// timeOrAgo reads a point in time: RFC 3339, or a duration back from now
// ("2h" is two hours ago).
func timeOrAgo(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time such as 2027-01-01T00:00:00Z or a duration back from now such as 2h, got %q", s)
	}
	return now.Add(-d), nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// restoreOptions are the restore command's flags.
type restoreOptions struct {
	target           string
	paths            []string
	conflict         string
	include, exclude []string
	dryRun           bool

	// VM restores.
	vmName, vmFolder, vmDatastore, vmPool, vmHost string
	vmNetworks                                    []string
	powerOn, overwriteOriginal                    bool
	disk                                          int
	attachTo                                      string
	// A database restore.
	dbServer, dbDataDir, pitr, restorePoint, lsn, xid, endState string
	dbPort                                                      int
	dbOverwrite, dbVerify, dbRollForward                        bool
	// A NAS restore.
	nas               bool
	nasShare, nasPath string
}

const restoreLong = `Restore a recovery point. With --wait, wait and print what was restored.

Files: --target DIR (default: the original location), --path P (repeatable), --conflict overwrite|skip|rename,
  --include GLOB and --exclude GLOB (repeatable; *, ?, [..], ** and {a,b}, matched against paths and names),
  --dry-run (list what would be written, overwritten, renamed or skipped, and the bytes; nothing is written;
  onto an agent's host the agent computes it in a job, which the command waits for, within --timeout).
A VM as a new VM: --vm-name NAME [--vm-folder PATH] [--vm-datastore DS] [--vm-pool PATH] [--vm-host PATH]
  [--vm-network OLD=NEW]... [--power-on]
A VM over the original (powered off): --overwrite-original
One disk onto another VM: --disk KEY --attach-to INSTANCE_UUID [--vm-datastore DS]
A database: [--pitr TIME | --restore-point NAME | --lsn LSN | --xid XID] [--end-state recovery|standby|no_recovery]
  [--database-server ID|NAME] [--data-dir DIR [--port N]] [--overwrite]
A standby or no_recovery restore rolled forward: --roll-forward --data-dir DIR [a target] [--end-state recovery]
A NAS share's point: --nas [--nas-share ID|NAME] [--nas-path DIR] [--conflict overwrite|skip|rename]
  [--path P]... [--include GLOB]... [--exclude GLOB]... [--dry-run]
  --nas-share restores into another NAS share (default: the point's own); --nas-path DIR recreates the backed-up
  paths under this directory of the share (relative to its root, such as restored/today; default: where they were).
  Either implies --nas.
A database point's check: --verify (restored into a scratch cluster, started, checked with pg_amcheck and a row
  count per table; the result is recorded on the point, nothing else is touched)
  With --pitr, --restore-point, --lsn or --xid, POINT may be any point of the set: the server picks the full or
  differential to start from and the log backups to replay. Over the original data directory, --overwrite is needed.

` + exitCodesHelp

func restoreCommand(e *clientEnv) *cobra.Command {
	var o restoreOptions
	var w waitFlags
	cmd := &cobra.Command{
		Use: "restore POINT", Short: "restore a recovery point: files, a VM as a new VM, over the original, or one disk",
		Long: restoreLong, Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: completePoints,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := restoreRequest(args[0], o)
			if err != nil {
				return err
			}
			if o.dryRun {
				plan, err := e.planRestore(cmd.Context(), req, w)
				if err != nil {
					return restoreError(err)
				}
				return printPlan(e, plan)
			}
			j, err := e.client.Restore(cmd.Context(), req)
			if err != nil {
				return restoreError(err)
			}
			return e.finishJob(cmd.Context(), j, w)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", "", "restore into this directory instead of the original location")
	f.StringArrayVar(&o.paths, "path", nil, "restore only this path (repeatable)")
	choiceFlag(cmd, &o.conflict, "conflict", "what to do with existing files", "overwrite", "skip", "rename")
	f.StringArrayVar(&o.include, "include", nil, "restore only what matches this glob, or lies below a directory that does (repeatable)")
	f.StringArrayVar(&o.exclude, "exclude", nil, "leave out what matches this glob, and everything below a directory that does (repeatable)")
	f.BoolVar(&o.dryRun, "dry-run", false, "list what the restore would write, overwrite, rename or skip, and the bytes, without writing anything")
	f.StringVar(&o.vmName, "vm-name", "", "restore a VM point as a new VM of this name")
	f.StringVar(&o.vmFolder, "vm-folder", "", "inventory path of the new VM's folder (default: the original's)")
	f.StringVar(&o.vmDatastore, "vm-datastore", "", "datastore of the restored disks (default: the original's)")
	f.StringVar(&o.vmPool, "vm-pool", "", "inventory path of the new VM's resource pool (default: the original's)")
	f.StringVar(&o.vmHost, "vm-host", "", "inventory path of the new VM's ESXi host (default: the original's)")
	f.StringArrayVar(&o.vmNetworks, "vm-network", nil, "connect the new VM's network OLD to NEW, as OLD=NEW (repeatable)")
	f.BoolVar(&o.powerOn, "power-on", false, "power the new VM on once restored")
	f.BoolVar(&o.overwriteOriginal, "overwrite-original", false, "restore a VM point over the original VM, which must be powered off")
	f.IntVar(&o.disk, "disk", 0, "restore only this disk of a VM point (device key, such as 2000); needs --attach-to")
	f.StringVar(&o.attachTo, "attach-to", "", "instance UUID of the VM that gets the disk restored with --disk")
	f.StringVar(&o.pitr, "pitr", "", "restore a database to this instant (RFC 3339, such as 2026-12-05T10:30:00Z), replaying its log backups")
	f.StringVar(&o.restorePoint, "restore-point", "", "restore a database to this named restore point (pg_create_restore_point)")
	f.StringVar(&o.lsn, "lsn", "", "restore a database to this WAL location (such as 0/16B3740)")
	f.StringVar(&o.xid, "xid", "", "restore a database to the commit of this transaction id")
	choiceFlag(cmd, &o.endState, "end-state", "how a restored database ends", api.EndRecovery, api.EndStandby, api.EndNoRecovery)
	f.StringVar(&o.dbServer, "database-server", "", "restore a database point onto this database server (default: the set's own)")
	f.StringVar(&o.dbDataDir, "data-dir", "", "restore a database point into this data directory (default: the server's own)")
	f.IntVar(&o.dbPort, "port", 0, "the port a database restored beside the original listens on")
	f.BoolVar(&o.dbRollForward, "roll-forward", false, "apply more logs to the standby or no_recovery restore in --data-dir, to the new target and --end-state (recovery promotes it)")
	f.BoolVar(&o.dbVerify, "verify", false, "restore a database point into a scratch cluster on its host, check it (pg_amcheck, row counts) and record the result on the point")
	f.BoolVar(&o.dbOverwrite, "overwrite", false, "restore a database over its server's data directory (its connections are ended, the cluster stopped)")
	f.BoolVar(&o.nas, "nas", false, "restore a NAS share's point (implied by --nas-share and --nas-path)")
	f.StringVar(&o.nasShare, "nas-share", "", "restore a NAS share's point into this NAS share (id or name; default: the point's own)")
	f.StringVar(&o.nasPath, "nas-path", "", "restore a NAS share's point under this directory of the share, relative to its root (default: where the files were)")
	w.add(cmd)
	return cmd
}

// restoreRequest builds a restore from the command's flags: a VM flag makes
// it a VM restore, in the one mode the flags name.
func restoreRequest(point string, f restoreOptions) (api.RestoreRequest, error) {
	req := api.RestoreRequest{PointID: point, TargetPath: f.target, Paths: f.paths, Conflict: f.conflict, Include: f.include, Exclude: f.exclude}
	if f.nas || f.nasShare != "" || f.nasPath != "" {
		return nasRestore(req, f)
	}
	if f.pitr != "" || f.restorePoint != "" || f.lsn != "" || f.xid != "" || f.endState != "" || f.dbServer != "" || f.dbDataDir != "" || f.dbPort != 0 || f.dbOverwrite || f.dbVerify || f.dbRollForward {
		return databaseRestore(req, f)
	}
	newVM := f.vmName != "" || f.vmFolder != "" || f.vmPool != "" || f.vmHost != "" || len(f.vmNetworks) > 0 || f.powerOn
	oneDisk := f.disk != 0 || f.attachTo != ""
	modes := 0
	for _, m := range []bool{newVM, f.overwriteOriginal, oneDisk} {
		if m {
			modes++
		}
	}
	if modes == 0 && f.vmDatastore == "" {
		return req, nil
	}
	if f.target != "" || len(f.paths) > 0 || f.conflict != "" || len(f.include) > 0 || len(f.exclude) > 0 || f.dryRun {
		return req, errors.New("--target, --path, --conflict, --include, --exclude and --dry-run restore files; a VM restore takes none of them")
	}
	if modes > 1 {
		return req, errors.New("a VM restore is either a new VM (--vm-name and the other --vm-* flags, --power-on), " +
			"over the original (--overwrite-original) or one disk (--disk with --attach-to): choose one")
	}
	req.VM = &api.VMRestore{Datastore: f.vmDatastore}
	switch {
	case f.overwriteOriginal:
		req.VM.Mode, req.VM.Overwrite = api.VMRestoreOriginal, true
	case oneDisk:
		if f.disk <= 0 || f.disk > math.MaxInt32 || f.attachTo == "" {
			return req, errors.New("a single-disk restore needs --disk KEY (the disk's device key, such as 2000) and --attach-to INSTANCE_UUID")
		}
		req.VM.Mode, req.VM.DiskKey, req.VM.TargetInstanceUUID = api.VMRestoreDisk, int32(f.disk), f.attachTo
	default:
		req.VM.Mode = api.VMRestoreNew
		req.VM.Name, req.VM.Folder, req.VM.ResourcePool, req.VM.Host, req.VM.PowerOn = f.vmName, f.vmFolder, f.vmPool, f.vmHost, f.powerOn
		for _, m := range f.vmNetworks {
			from, to, ok := strings.Cut(m, "=")
			if !ok || from == "" || to == "" {
				return req, fmt.Errorf("--vm-network %q: want OLD=NEW, such as \"VM Network=Isolated\"", m)
			}
			if req.VM.NetworkMap == nil {
				req.VM.NetworkMap = map[string]string{}
			}
			req.VM.NetworkMap[from] = to
		}
	}
	return req, nil
}

// databaseRestore is a restore of a database point from the flags.
func databaseRestore(req api.RestoreRequest, f restoreOptions) (api.RestoreRequest, error) {
	if req.TargetPath != "" || len(req.Paths) > 0 || req.Conflict != "" || len(req.Include) > 0 || len(req.Exclude) > 0 || f.dryRun || f.vmName != "" || f.overwriteOriginal || f.disk != 0 {
		return req, errors.New("--target, --path, --conflict, --include, --exclude, --dry-run and the VM flags do not apply to a database restore")
	}
	d := &api.DatabaseRestore{TargetDatabaseServerID: f.dbServer, DataDir: f.dbDataDir, Port: f.dbPort, RestorePoint: f.restorePoint,
		LSN: f.lsn, XID: f.xid, EndState: f.endState, Overwrite: f.dbOverwrite, Verify: f.dbVerify, RollForward: f.dbRollForward}
	if f.pitr != "" {
		t, err := time.Parse(time.RFC3339Nano, f.pitr)
		if err != nil {
			return req, fmt.Errorf("--pitr %q: want an RFC 3339 time, such as 2026-12-05T10:30:00Z", f.pitr)
		}
		d.PointInTime = &t
	}
	req.Database = d
	return req, nil
}

// nasRestore is a restore of a NAS share's point from the flags: --conflict
// is the NAS block's, and --path, --include, --exclude and --dry-run apply
// as to files.
func nasRestore(req api.RestoreRequest, f restoreOptions) (api.RestoreRequest, error) {
	if f.target != "" || f.vmName != "" || f.vmFolder != "" || f.vmPool != "" || f.vmHost != "" || f.vmDatastore != "" ||
		len(f.vmNetworks) > 0 || f.powerOn || f.overwriteOriginal || f.disk != 0 || f.attachTo != "" ||
		f.pitr != "" || f.restorePoint != "" || f.lsn != "" || f.xid != "" || f.endState != "" || f.dbServer != "" ||
		f.dbDataDir != "" || f.dbPort != 0 || f.dbOverwrite || f.dbVerify || f.dbRollForward {
		return req, errors.New("--target and the VM and database flags do not apply to a NAS restore: " +
			"--nas-share names the share to restore into, --nas-path the directory in it")
	}
	req.NAS = &api.NASRestore{ShareID: f.nasShare, Path: f.nasPath, Conflict: f.conflict}
	req.Conflict = ""
	return req, nil
}

// restoreFlags names the flag behind each field the server can refuse.
var restoreFlags = map[string]string{
	"target_path": "--target", "paths": "--path", "conflict": "--conflict", "include": "--include", "exclude": "--exclude", "dry_run": "--dry-run",
	"vm.name": "--vm-name", "vm.folder": "--vm-folder", "vm.datastore": "--vm-datastore", "vm.resource_pool": "--vm-pool",
	"vm.host": "--vm-host", "vm.network_map": "--vm-network", "vm.overwrite": "--overwrite-original",
	"vm.disk_key": "--disk", "vm.target_instance_uuid": "--attach-to",
	"vm":                     "--vm-name NAME, --overwrite-original or --disk KEY --attach-to INSTANCE_UUID",
	"database.point_in_time": "--pitr", "database.restore_point": "--restore-point", "database.lsn": "--lsn", "database.xid": "--xid",
	"database.end_state": "--end-state", "database.target_database_server_id": "--database-server", "database.data_dir": "--data-dir",
	"database.port": "--port", "database.overwrite": "--overwrite", "database.verify": "--verify", "database.roll_forward": "--roll-forward",
	"database":     "--pitr, --restore-point, --end-state, --data-dir or --overwrite",
	"nas.share_id": "--nas-share", "nas.path": "--nas-path", "nas.conflict": "--conflict",
	"nas": "--nas, --nas-share or --nas-path",
}

// restoreError points a refused restore at the flag to change.
func restoreError(err error) error { return flagError(err, restoreFlags) }

// flagError points a refused request at the flag to change, from flags
// (field → flag), since the server names JSON fields the operator never
// typed.
func flagError(err error, flags map[string]string) error {
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Field == "" {
		return err
	}
	field := ae.Field
	if i := strings.IndexByte(field, '['); i > 0 {
		field = field[:i]
	}
	if flag, ok := flags[field]; ok {
		return fmt.Errorf("%w (see %s)", err, flag)
	}
	return err
}

// printRestoredVM prints the VM a VM restore made or changed, from the job's
// result.
func printRestoredVM(w io.Writer, j *api.Job) {
	name := j.Result["vm_name"]
	if name == "" {
		return
	}
	if key := j.Result["disk_key"]; key != "" {
		fmt.Fprintf(w, "disk %s (%s) attached to VM %s (instance UUID %s, %s)\n", key, j.Result["disk_file"], name,
			j.Result["vm_instance_uuid"], j.Result["vm_moref"])
		return
	}
	fmt.Fprintf(w, "VM %s (instance UUID %s, %s)\n", name, j.Result["vm_instance_uuid"], j.Result["vm_moref"])
}

var (
	errNoAsset       = errors.New("no fileset, database set, NAS share or protected VM")
	errNoProtectedVM = errors.New("no protected VM")
)

// findAsset resolves a fileset, database set or NAS share (id or name) or
// a protected VM (id, VM name or instance UUID) to its asset id.
func findAsset(ctx context.Context, c *api.Client, ref string) (string, error) {
	f, err := c.Filesets().Get(ctx, ref)
	if err == nil {
		return f.ID, nil
	}
	if !api.IsNotFound(err) {
		return "", err
	}
	if d, err := c.DatabaseSets().Get(ctx, ref); err == nil {
		return d.ID, nil
	} else if !api.IsNotFound(err) {
		return "", err
	}
	if s, err := c.NASShares().Get(ctx, ref); err == nil {
		return s.ID, nil
	} else if !api.IsNotFound(err) {
		return "", err
	}
	p, perr := findProtectedVM(ctx, c, ref)
	if errors.Is(perr, errNoProtectedVM) {
		return "", fmt.Errorf("%w %q: %w", errNoAsset, ref, perr)
	}
	if perr != nil {
		return "", perr
	}
	return p.ID, nil
}

// findProtectedVM looks a protected VM up by id, or else by the name or
// instance UUID of its VM, which is what an operator has at hand.
func findProtectedVM(ctx context.Context, c *api.Client, ref string) (*api.ProtectedVM, error) {
	p, err := c.ProtectedVMs().Get(ctx, ref)
	if !api.IsNotFound(err) {
		return p, err
	}
	all, err := c.ProtectedVMs().ListAll(ctx)
	if err != nil {
		return nil, err
	}
	var found []api.ProtectedVM
	for _, p := range all {
		if p.Name == ref || strings.EqualFold(p.InstanceUUID, ref) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w has the id, VM name or instance UUID %q (haven protected-vms list shows them)", errNoProtectedVM, ref)
	case 1:
		return &found[0], nil
	}
	ids := make([]string, len(found))
	for i, p := range found {
		ids[i] = p.ID
	}
	return nil, fmt.Errorf("%d protected VMs are named %q (in different vCenters): give one of the ids %s", len(found), ref, strings.Join(ids, ", "))
}
