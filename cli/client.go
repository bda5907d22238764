package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/buildinfo"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// command is one `haven <noun> <verb>` of the client CLI.
type command struct {
	noun, verb string
	args       string // usage of the positional arguments
	help       string
	run        func(ctx context.Context, env *clientEnv, args []string) error
}

// clientEnv is what every client command gets: a connected client, where
// to print, and the flags (each command reads those that concern it).
type clientEnv struct {
	client *api.Client
	out    io.Writer
	json   bool
	flags  clientFlags
}

type clientFlags struct {
	wait     bool
	timeout  time.Duration
	target   string
	paths    stringList
	conflict string
	asset    string
	state    string
	kind     string

	// VM restores.
	vmName, vmFolder, vmDatastore, vmPool, vmHost string
	vmNetworks                                    stringList
	powerOn, overwriteOriginal                    bool
	disk                                          int
	attachTo                                      string

	// Tokens and the audit log.
	ttl, expires, since, until, tokenID, object, method, pageToken string
	limit                                                          int
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

var commands = []command{
	{"storages", "list", "", "list storages", func(ctx context.Context, e *clientEnv, _ []string) error {
		items, err := e.client.Storages().ListAll(ctx)
		if err != nil {
			return err
		}
		return printTable(e, items, []string{"ID", "NAME", "KIND", "LOCATION", "VERSION"}, func(s api.Storage) []any {
			loc := s.Path
			if s.Kind == api.StorageS3 {
				loc = "s3://" + s.Bucket + "/" + s.Prefix
			}
			return []any{s.ID, s.Name, s.Kind, loc, s.Version}
		})
	}},
	{"storages", "show", "ID|NAME", "show one storage", func(ctx context.Context, e *clientEnv, args []string) error {
		s, err := e.client.Storages().Get(ctx, args[0])
		return e.show(s, err)
	}},
	{"storages", "delete", "ID|NAME", "delete a storage; one that holds recovery points needs force_destroy, and then loses them", func(ctx context.Context, e *clientEnv, args []string) error {
		s, err := e.client.Storages().Get(ctx, args[0])
		if err != nil {
			return err
		}
		gone, err := e.client.DeleteStorage(ctx, s.ID)
		if err != nil || gone == nil {
			return err
		}
		if e.json {
			return e.show(gone, nil)
		}
		fmt.Fprintf(e.out, "storage %s deleted: %s\n", s.Name, gone.Message)
		return nil
	}},
	{"storages", "import", storagesImportArgs, storagesImportHelp, storagesImport},
	{"policies", "list", "", "list backup policies", func(ctx context.Context, e *clientEnv, _ []string) error {
		items, err := e.client.Policies().ListAll(ctx)
		if err != nil {
			return err
		}
		return printTable(e, items, []string{"ID", "NAME", "TIMEZONE", "FULL", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"}, func(p api.Policy) []any {
			full := strings.Join(p.Full.DaysOfWeek, ",")
			if p.Full.DayOfMonth != 0 {
				full = fmt.Sprintf("day %d", p.Full.DayOfMonth)
			}
			r := p.Retention
			return []any{p.ID, p.Name, p.Timezone, full + " " + p.Full.At, r.DailyDays, r.WeeklyWeeks, r.MonthlyMonths, r.YearlyYears}
		})
	}},
	{"policies", "show", "ID|NAME", "show one backup policy", func(ctx context.Context, e *clientEnv, args []string) error {
		p, err := e.client.Policies().Get(ctx, args[0])
		return e.show(p, err)
	}},
	{"tokens", "list", "", "list API tokens (admin)", func(ctx context.Context, e *clientEnv, _ []string) error {
		var all []api.Token
		token := ""
		for {
			page, err := e.client.ListTokens(ctx, token, 0)
			if err != nil {
				return err
			}
			all = append(all, page.Items...)
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		return printTable(e, all, []string{"ID", "NAME", "ROLE", "GROUPS", "EXPIRES", "LAST USED", "REVOKED"}, func(t api.Token) []any {
			return []any{t.ID, t.Name, t.Role, strings.Join(t.Groups, ","), timeOrDash(t.ExpiresAt, "never"), timeOrDash(t.LastUsedAt, "never"), timeOrDash(t.RevokedAt, "no")}
		})
	}},
	{"tokens", "create", "NAME ROLE [GROUP...]", "create an API token and print its secret once (admin); --ttl 30d or --expires TIME makes it expire", func(ctx context.Context, e *clientEnv, args []string) error {
		if len(args) < 2 {
			return errors.New("usage: haven tokens create NAME ROLE [GROUP...] [--ttl 30d | --expires 2027-01-01T00:00:00Z]")
		}
		req := api.TokenRequest{Name: args[0], Role: args[1], Groups: args[2:], TTL: e.flags.ttl}
		if e.flags.expires != "" {
			at, err := time.Parse(time.RFC3339, e.flags.expires)
			if err != nil {
				return fmt.Errorf("--expires %q: want an RFC 3339 time such as 2027-01-01T00:00:00Z", e.flags.expires)
			}
			req.ExpiresAt = &at
		}
		t, err := e.client.CreateToken(ctx, req)
		if err != nil {
			return err
		}
		if e.json {
			return e.show(t, nil)
		}
		fmt.Fprintln(e.out, t.Secret)
		return nil
	}},
	{"tokens", "revoke", "ID", "revoke an API token (admin)", func(ctx context.Context, e *clientEnv, args []string) error {
		return e.client.RevokeToken(ctx, args[0])
	}},
	{"audit", "list", "", "list the audit log of API writes, newest first (admin); --token-id, --object, --method, --since, --until filter, --limit and --page-token page", func(ctx context.Context, e *clientEnv, _ []string) error {
		f := api.AuditFilter{TokenID: e.flags.tokenID, ObjectID: e.flags.object, Method: e.flags.method}
		for _, tf := range []struct {
			flag, value string
			into        **time.Time
		}{{"--since", e.flags.since, &f.Since}, {"--until", e.flags.until, &f.Until}} {
			if tf.value == "" {
				continue
			}
			at, err := timeOrAgo(tf.value, time.Now())
			if err != nil {
				return fmt.Errorf("%s: %w", tf.flag, err)
			}
			*tf.into = &at
		}
		page, err := e.client.ListAudit(ctx, f, e.flags.pageToken, e.flags.limit)
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
		if page.NextPageToken != "" && !e.json {
			fmt.Fprintf(e.out, "more: --page-token %s\n", page.NextPageToken)
		}
		return nil
	}},
	{"file-servers", "list", "", "list file servers", func(ctx context.Context, e *clientEnv, _ []string) error {
		items, err := e.client.FileServers().ListAll(ctx)
		if err != nil {
			return err
		}
		return printTable(e, items, []string{"ID", "NAME", "HOSTNAME", "OS", "LOCATION", "AGENT"}, func(f api.FileServer) []any {
			return []any{f.ID, f.Name, f.Hostname, f.OS, f.Location, f.AgentStatus}
		})
	}},
	{"filesets", "list", "", "list filesets", func(ctx context.Context, e *clientEnv, _ []string) error {
		items, err := e.client.Filesets().ListAll(ctx)
		if err != nil {
			return err
		}
		return printTable(e, items, []string{"ID", "NAME", "PATHS", "GROUP"}, func(f api.Fileset) []any {
			return []any{f.ID, f.Name, strings.Join(f.IncludePaths, ","), f.Group}
		})
	}},
	{"backup", "now", "ASSET", "queue a backup of an asset now: a fileset (id or name) or a protected VM (id, VM name or instance UUID); --wait waits for it", func(ctx context.Context, e *clientEnv, args []string) error {
		assetID, err := findAsset(ctx, e.client, args[0])
		if err != nil {
			return err
		}
		j, err := e.client.BackupNow(ctx, assetID)
		if err != nil {
			return err
		}
		return e.finishJob(ctx, j)
	}},
	{"restore", "", "POINT", restoreHelp, func(ctx context.Context, e *clientEnv, args []string) error {
		if len(args) != 1 {
			return errors.New("usage: haven restore POINT [--target DIR] [--path P]... [--conflict C] [--wait]\n" +
				"       haven restore POINT --vm-name NAME [--vm-folder PATH] [--vm-datastore DS] [--vm-pool PATH] [--vm-host PATH] [--vm-network OLD=NEW]... [--power-on] [--wait]\n" +
				"       haven restore POINT --overwrite-original [--wait]\n" +
				"       haven restore POINT --disk KEY --attach-to INSTANCE_UUID [--vm-datastore DS] [--wait]")
		}
		req, err := restoreRequest(args[0], e.flags)
		if err != nil {
			return err
		}
		j, err := e.client.Restore(ctx, req)
		if err != nil {
			return restoreError(err)
		}
		return e.finishJob(ctx, j)
	}},
	{"protected-vms", "list", "", "list protected VMs", func(ctx context.Context, e *clientEnv, _ []string) error {
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
	}},
	{"protected-vms", "show", "ID|VM", "show one protected VM, by id, VM name or instance UUID", func(ctx context.Context, e *clientEnv, args []string) error {
		p, err := findProtectedVM(ctx, e.client, args[0])
		return e.show(p, err)
	}},
	{"protected-vms", "delete", "ID|VM", "stop protecting a VM, by id, VM name or instance UUID; its recovery points stay restorable until their retention ends", func(ctx context.Context, e *clientEnv, args []string) error {
		p, err := findProtectedVM(ctx, e.client, args[0])
		if err != nil {
			return err
		}
		if err := e.client.ProtectedVMs().Delete(ctx, p.ID); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "protected VM %s (%s) deleted; its recovery points stay restorable until their retention ends\n", p.Name, p.ID)
		return nil
	}},
	{"points", "list", "[ASSET]", "list recovery points, newest first", func(ctx context.Context, e *clientEnv, args []string) error {
		asset := ""
		if len(args) > 0 {
			var err error
			if asset, err = findAsset(ctx, e.client, args[0]); err != nil {
				return err
			}
		}
		var all []api.Point
		token := ""
		for {
			page, err := e.client.ListPoints(ctx, asset, token, 0)
			if err != nil {
				return err
			}
			all = append(all, page.Items...)
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		return printTable(e, all, []string{"ID", "ASSET", "ASSET ID", "KIND", "COMPLETED", "FILES", "LOGICAL", "NEW"}, func(p api.Point) []any {
			name := p.AssetName
			if p.AssetDeleted {
				name += " (deleted)"
			}
			return []any{p.ID, name, p.AssetID, p.Kind, p.CompletedAt.Local().Format(time.RFC3339), p.Files, humanBytes(p.LogicalBytes), humanBytes(p.NewBytes)}
		})
	}},
	{"jobs", "list", "", "list jobs, newest first (--asset, --state, --kind filter)", func(ctx context.Context, e *clientEnv, _ []string) error {
		page, err := e.client.ListJobs(ctx, api.JobFilter{AssetID: e.flags.asset, State: e.flags.state, Kind: e.flags.kind}, "", 100)
		if err != nil {
			return err
		}
		return printTable(e, page.Items, []string{"ID", "KIND", "STATE", "TRIGGER", "CREATED", "FILES", "BYTES", "ERROR"}, func(j api.Job) []any {
			return []any{j.ID, j.Kind, j.State, j.Trigger, j.CreatedAt.Local().Format(time.RFC3339), j.Progress.FilesDone, humanBytes(j.Progress.BytesDone), j.Error}
		})
	}},
	{"jobs", "show", "ID", "show one job", func(ctx context.Context, e *clientEnv, args []string) error {
		j, err := e.client.GetJob(ctx, args[0])
		return e.show(j, err)
	}},
	{"jobs", "cancel", "ID", "cancel a job", func(ctx context.Context, e *clientEnv, args []string) error {
		j, err := e.client.CancelJob(ctx, args[0])
		return e.show(j, err)
	}},
	{"jobs", "wait", "ID", "wait until a job finishes; exit 1 unless it succeeded", func(ctx context.Context, e *clientEnv, args []string) error {
		j, err := e.client.GetJob(ctx, args[0])
		if err != nil {
			return err
		}
		e.flags.wait = true
		return e.finishJob(ctx, j)
	}},
	{"storages", "verify", "STORAGE", "queue a verify of every pack a storage holds; --wait waits", func(ctx context.Context, e *clientEnv, args []string) error {
		st, err := e.client.Storages().Get(ctx, args[0])
		if err != nil {
			return err
		}
		var j api.Job
		if err := e.client.Do(ctx, "POST", "/v1/storages/"+st.ID+"/verify", nil, struct{}{}, &j); err != nil {
			return err
		}
		return e.finishJob(ctx, &j)
	}},
	{"storages", "gc", "STORAGE", "queue a garbage collection of a storage; --wait waits", func(ctx context.Context, e *clientEnv, args []string) error {
		st, err := e.client.Storages().Get(ctx, args[0])
		if err != nil {
			return err
		}
		var j api.Job
		if err := e.client.Do(ctx, "POST", "/v1/storages/"+st.ID+"/gc", nil, struct{}{}, &j); err != nil {
			return err
		}
		return e.finishJob(ctx, &j)
	}},
	{"whoami", "", "", "show the token in use", func(ctx context.Context, e *clientEnv, _ []string) error {
		var t api.Token
		err := e.client.Do(ctx, "GET", "/v1/whoami", nil, nil, &t)
		return e.show(t, err)
	}},
}

// finishJob prints a queued job, or with --wait follows it to the end and
// fails unless it succeeded.
func (e *clientEnv) finishJob(ctx context.Context, j *api.Job) error {
	if !e.flags.wait {
		if e.json {
			return e.show(j, nil)
		}
		fmt.Fprintf(e.out, "job %s %s\n", j.ID, j.State)
		return nil
	}
	if e.flags.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.flags.timeout)
		defer cancel()
	}
	done, err := e.client.WaitJob(ctx, j.ID, 200*time.Millisecond)
	if err != nil {
		return err
	}
	if e.json {
		if err := e.show(done, nil); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.out, "job %s %s", done.ID, done.State)
		if done.PointID != "" {
			fmt.Fprintf(e.out, " point %s", done.PointID)
		}
		// A VM's progress counts disks where a fileset's counts files.
		items := "files"
		if done.AssetID != "" {
			if _, err := e.client.ProtectedVMs().Get(ctx, done.AssetID); err == nil {
				items = "disks"
			}
		}
		fmt.Fprintf(e.out, " (%d %s, %s)\n", done.Progress.FilesDone, items, humanBytes(done.Progress.BytesDone))
		for _, w := range done.Warnings {
			fmt.Fprintln(e.out, "  warning:", w)
		}
		printRestoredVM(e.out, done)
	}
	if done.State != api.JobSucceeded {
		return fmt.Errorf("job %s %s: %s", done.ID, done.State, done.Error)
	}
	return nil
}

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

func (e *clientEnv) show(v any, err error) error {
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printTable prints items as aligned columns, or as JSON with -o json.
func printTable[T any](e *clientEnv, items []T, header []string, row func(T) []any) error {
	if e.json {
		return e.show(items, nil)
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, it := range items {
		cells := row(it)
		parts := make([]string, len(cells))
		for i, c := range cells {
			parts[i] = fmt.Sprint(c)
		}
		fmt.Fprintln(tw, strings.Join(parts, "\t"))
	}
	return tw.Flush()
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `haven %s: backup and disaster recovery driven from Terraform

Usage:
  haven                      serve the Terraform provider (Terraform starts it this way)
  haven server [flags]       run the control plane (haven server -h for flags)
  haven agent [flags]        run on a protected host (haven agent -h for flags)
  haven version              print the version
  haven <noun> <verb> [args] client commands, against $HAVEN_ENDPOINT with $HAVEN_TOKEN

Client commands (add -o json for JSON):
`, buildinfo.Version)
	for _, c := range commands {
		fmt.Fprintf(w, "  haven %-28s %s\n", strings.TrimSpace(c.noun+" "+c.verb+" "+c.args), c.help)
	}
}

// runClient runs a client command.
func runClient(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("haven", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	output := fs.String("o", "table", "output format: table or json")
	var flags clientFlags
	fs.BoolVar(&flags.wait, "wait", false, "wait for the job to finish")
	fs.DurationVar(&flags.timeout, "timeout", 0, "give up waiting after this long")
	fs.StringVar(&flags.target, "target", "", "restore into this directory instead of the original location")
	fs.Var(&flags.paths, "path", "restore only this path (repeatable)")
	fs.StringVar(&flags.conflict, "conflict", "", "overwrite, skip or rename existing files")
	fs.StringVar(&flags.asset, "asset", "", "only jobs of this asset id")
	fs.StringVar(&flags.state, "state", "", "only jobs in this state")
	fs.StringVar(&flags.kind, "kind", "", "only jobs of this kind")
	fs.StringVar(&flags.vmName, "vm-name", "", "restore a VM point as a new VM of this name")
	fs.StringVar(&flags.vmFolder, "vm-folder", "", "inventory path of the new VM's folder (default: the original's)")
	fs.StringVar(&flags.vmDatastore, "vm-datastore", "", "datastore of the restored disks (default: the original's)")
	fs.StringVar(&flags.vmPool, "vm-pool", "", "inventory path of the new VM's resource pool (default: the original's)")
	fs.StringVar(&flags.vmHost, "vm-host", "", "inventory path of the new VM's ESXi host (default: the original's)")
	fs.Var(&flags.vmNetworks, "vm-network", "connect the new VM's network OLD to NEW, as OLD=NEW (repeatable)")
	fs.BoolVar(&flags.powerOn, "power-on", false, "power the new VM on once restored")
	fs.BoolVar(&flags.overwriteOriginal, "overwrite-original", false, "restore a VM point over the original VM, which must be powered off")
	fs.IntVar(&flags.disk, "disk", 0, "restore only this disk of a VM point (device key, such as 2000); needs --attach-to")
	fs.StringVar(&flags.attachTo, "attach-to", "", "instance UUID of the VM that gets the disk restored with --disk")
	fs.StringVar(&flags.ttl, "ttl", "", "tokens create: the token expires this long after creation (12h, 90m, 30d)")
	fs.StringVar(&flags.expires, "expires", "", "tokens create: the token expires at this RFC 3339 time")
	fs.StringVar(&flags.tokenID, "token-id", "", "audit list: only writes made with this token id")
	fs.StringVar(&flags.object, "object", "", "audit list: only writes naming this object id")
	fs.StringVar(&flags.method, "method", "", "audit list: only writes with this HTTP method")
	fs.StringVar(&flags.since, "since", "", "audit list: only writes at or after this time (RFC 3339, or a duration ago such as 24h)")
	fs.StringVar(&flags.until, "until", "", "audit list: only writes before this time (RFC 3339, or a duration ago)")
	fs.IntVar(&flags.limit, "limit", 0, "audit list: at most this many entries (default 100)")
	fs.StringVar(&flags.pageToken, "page-token", "", "audit list: continue from a previous listing")
	var words []string
	rest := args
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		words = append(words, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	cmd, cmdArgs := findCommand(words)
	if cmd == nil {
		fmt.Fprintf(os.Stderr, "haven: unknown command %q\n\n", strings.Join(words, " "))
		usage(os.Stderr)
		return 2
	}
	if want := len(strings.Fields(cmd.args)); cmd.args != "" && !strings.Contains(cmd.args, "[") && !strings.Contains(cmd.args, "...") && len(cmdArgs) != want {
		fmt.Fprintf(os.Stderr, "usage: haven %s %s %s\n", cmd.noun, cmd.verb, cmd.args)
		return 2
	}
	endpoint := os.Getenv("HAVEN_ENDPOINT")
	client, err := api.NewClient(api.ClientOptions{
		Endpoint: endpoint, Token: os.Getenv("HAVEN_TOKEN"), CAFile: os.Getenv("HAVEN_CA_FILE"),
		InsecureSkipVerify: os.Getenv("HAVEN_INSECURE_SKIP_VERIFY") == "true", MaxRetries: 3,
		UserAgent: "haven-cli/" + buildinfo.Version,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "haven: HAVEN_ENDPOINT:", err)
		return 2
	}
	env := &clientEnv{client: client, out: os.Stdout, json: *output == "json", flags: flags}
	if err := cmd.run(ctx, env, cmdArgs); err != nil {
		fmt.Fprintln(os.Stderr, "haven:", err)
		return 1
	}
	return 0
}

func findCommand(words []string) (*command, []string) {
	for i := range commands {
		c := &commands[i]
		if c.verb == "" && len(words) >= 1 && words[0] == c.noun {
			return c, words[1:]
		}
		if len(words) >= 2 && words[0] == c.noun && words[1] == c.verb {
			return c, words[2:]
		}
	}
	return nil, nil
}

// restoreHelp is the restore command's line in the usage, continued on
// lines aligned under the first.
var restoreHelp = strings.Join([]string{
	"restore a recovery point; --wait waits and prints what was restored",
	"files: --target DIR (default: original location), --path P (repeatable), --conflict overwrite|skip|rename",
	"VM as a new VM: --vm-name NAME [--vm-folder PATH] [--vm-datastore DS] [--vm-pool PATH] [--vm-host PATH]",
	"  [--vm-network OLD=NEW]... [--power-on]",
	"VM over the original (powered off): --overwrite-original",
	"one disk onto another VM: --disk KEY --attach-to INSTANCE_UUID [--vm-datastore DS]",
}, "\n"+strings.Repeat(" ", len("  haven ")+28+1))

// restoreRequest builds a restore from the command's flags: a VM flag makes
// it a VM restore, in the one mode the flags name.
func restoreRequest(point string, f clientFlags) (api.RestoreRequest, error) {
	req := api.RestoreRequest{PointID: point, TargetPath: f.target, Paths: f.paths, Conflict: f.conflict}
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
	if f.target != "" || len(f.paths) > 0 || f.conflict != "" {
		return req, errors.New("--target, --path and --conflict restore files; a VM restore takes none of them")
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

// restoreFlags names the flag behind each field the server can refuse.
var restoreFlags = map[string]string{
	"target_path": "--target", "paths": "--path", "conflict": "--conflict",
	"vm.name": "--vm-name", "vm.folder": "--vm-folder", "vm.datastore": "--vm-datastore", "vm.resource_pool": "--vm-pool",
	"vm.host": "--vm-host", "vm.network_map": "--vm-network", "vm.overwrite": "--overwrite-original",
	"vm.disk_key": "--disk", "vm.target_instance_uuid": "--attach-to",
	"vm": "--vm-name NAME, --overwrite-original or --disk KEY --attach-to INSTANCE_UUID",
}

// restoreError points a refused restore at the flag to change, since the
// server names JSON fields the operator never typed.
func restoreError(err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Field == "" {
		return err
	}
	field := ae.Field
	if i := strings.IndexByte(field, '['); i > 0 {
		field = field[:i]
	}
	if flag, ok := restoreFlags[field]; ok {
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

// findAsset resolves a fileset (id or name) or a protected VM (id, VM
// name or instance UUID) to its asset id.
func findAsset(ctx context.Context, c *api.Client, ref string) (string, error) {
	f, err := c.Filesets().Get(ctx, ref)
	if err == nil {
		return f.ID, nil
	}
	if !api.IsNotFound(err) {
		return "", err
	}
	p, perr := findProtectedVM(ctx, c, ref)
	if perr != nil {
		return "", fmt.Errorf("no fileset or protected VM %q: %w", ref, perr)
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
		return nil, fmt.Errorf("no protected VM has the id, VM name or instance UUID %q (haven protected-vms list shows them)", ref)
	case 1:
		return &found[0], nil
	}
	ids := make([]string, len(found))
	for i, p := range found {
		ids[i] = p.ID
	}
	return nil, fmt.Errorf("%d protected VMs are named %q (in different vCenters): give one of the ids %s", len(found), ref, strings.Join(ids, ", "))
}
