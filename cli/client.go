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

// clientEnv is what every client command gets: a connected client and
// where to print.
type clientEnv struct {
	client *api.Client
	out    io.Writer
	json   bool
}

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
	{"whoami", "", "", "show the token in use", func(ctx context.Context, e *clientEnv, _ []string) error {
		var t api.Token
		err := e.client.Do(ctx, "GET", "/v1/whoami", nil, nil, &t)
		return e.show(t, err)
	}},
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
	if want := len(strings.Fields(cmd.args)); cmd.args != "" && !strings.Contains(cmd.args, "[") && len(cmdArgs) != want {
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
	env := &clientEnv{client: client, out: os.Stdout, json: *output == "json"}
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
