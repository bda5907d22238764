package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
	{"storages", "delete", "ID|NAME", "delete a storage", func(ctx context.Context, e *clientEnv, args []string) error {
		s, err := e.client.Storages().Get(ctx, args[0])
		if err != nil {
			return err
		}
		return e.client.Storages().Delete(ctx, s.ID)
	}},
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
		return printTable(e, all, []string{"ID", "NAME", "ROLE", "GROUPS", "REVOKED"}, func(t api.Token) []any {
			return []any{t.ID, t.Name, t.Role, strings.Join(t.Groups, ","), t.RevokedAt != nil}
		})
	}},
	{"tokens", "create", "NAME ROLE [GROUP...]", "create an API token and print its secret once (admin)", func(ctx context.Context, e *clientEnv, args []string) error {
		if len(args) < 2 {
			return errors.New("usage: haven tokens create NAME ROLE [GROUP...]")
		}
		t, err := e.client.CreateToken(ctx, api.TokenRequest{Name: args[0], Role: args[1], Groups: args[2:]})
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
	{"backup", "now", "ASSET", "queue a backup of an asset (id or name) now; --wait waits for it", func(ctx context.Context, e *clientEnv, args []string) error {
		asset, err := e.client.Filesets().Get(ctx, args[0])
		if err != nil {
			return err
		}
		j, err := e.client.BackupNow(ctx, asset.ID)
		if err != nil {
			return err
		}
		return e.finishJob(ctx, j)
	}},
	{"restore", "", "POINT", "restore a recovery point; --target DIR (default: original location), --path P (repeatable), --conflict overwrite|skip|rename, --wait", func(ctx context.Context, e *clientEnv, args []string) error {
		if len(args) != 1 {
			return errors.New("usage: haven restore POINT [--target DIR] [--path P]... [--conflict C] [--wait]")
		}
		j, err := e.client.Restore(ctx, api.RestoreRequest{PointID: args[0], TargetPath: e.flags.target, Paths: e.flags.paths, Conflict: e.flags.conflict})
		if err != nil {
			return err
		}
		return e.finishJob(ctx, j)
	}},
	{"points", "list", "[ASSET]", "list recovery points, newest first", func(ctx context.Context, e *clientEnv, args []string) error {
		asset := ""
		if len(args) > 0 {
			a, err := e.client.Filesets().Get(ctx, args[0])
			if err != nil {
				return err
			}
			asset = a.ID
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
		return printTable(e, all, []string{"ID", "ASSET", "KIND", "COMPLETED", "FILES", "LOGICAL", "NEW"}, func(p api.Point) []any {
			return []any{p.ID, p.AssetID, p.Kind, p.CompletedAt.Local().Format(time.RFC3339), p.Files, humanBytes(p.LogicalBytes), humanBytes(p.NewBytes)}
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
		fmt.Fprintf(e.out, " (%d files, %s)\n", done.Progress.FilesDone, humanBytes(done.Progress.BytesDone))
		for _, w := range done.Warnings {
			fmt.Fprintln(e.out, "  warning:", w)
		}
	}
	if done.State != api.JobSucceeded {
		return fmt.Errorf("job %s %s: %s", done.ID, done.State, done.Error)
	}
	return nil
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
