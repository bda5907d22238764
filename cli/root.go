package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/havenbackup/terraform-provider-haven/internal/buildinfo"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// Exit codes of every haven command, documented in the root help and the
// CLI guide.
const (
	exitOK     = 0
	exitFailed = 1 // a job failed, or the server refused or failed the call
	exitUsage  = 2 // the command line is wrong: unknown command or flag, bad value
)

const exitCodesHelp = `Exit codes:
  0  success
  1  a job failed (with --wait), or the server refused or failed the request
  2  usage: unknown command or flag, a bad flag value or argument count, a bad -o`

const envHelp = `Environment:
  HAVEN_ENDPOINT               the server's URL
  HAVEN_TOKEN                  the API token
  HAVEN_CA_FILE                PEM bundle to trust for the server's certificate
  HAVEN_INSECURE_SKIP_VERIFY   "true" skips verifying the server's certificate`

// usageError is a mistake on the command line: exit 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitError ends a command that has printed what it had to say (the
// server and agent roles) with its own exit code.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Output formats of -o.
var outputFormats = []string{"table", "json", "yaml"}

// clientEnv is what every client command gets: a connected client, where
// to print, and the output format.
type clientEnv struct {
	client *api.Client
	out    io.Writer
	errOut io.Writer
	output string
}

func (e *clientEnv) json() bool { return e.output == "json" }

// runClient runs the haven command line (every role but the provider) and
// returns its exit code.
func runClient(ctx context.Context, args []string) int {
	e := &clientEnv{out: os.Stdout, errOut: os.Stderr, output: "table"}
	root := newRootCmd(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	code := exitFailed
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		code = exitUsage
	}
	e.printError(err, code)
	return code
}

// isCobraUsageError recognises the usage errors cobra makes itself.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command ") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.HasPrefix(msg, "invalid argument ")
}

// printError prints a failed command's error: as JSON on stderr under
// -o json, so a pipeline reading the output gets JSON either way.
func (e *clientEnv) printError(err error, code int) {
	if !e.json() {
		fmt.Fprintln(e.errOut, "haven:", err)
		if code == exitUsage && !strings.Contains(err.Error(), "--help") {
			fmt.Fprintln(e.errOut, "Run 'haven --help' or 'haven <command> --help' for usage.")
		}
		return
	}
	body := api.ErrorBody{Error: &api.Error{Code: "cli_error", Message: err.Error()}}
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		body.Error = &api.Error{Code: ae.Code, Field: ae.Field, Message: err.Error()}
	case code == exitUsage:
		body.Error.Code = "usage"
	}
	enc := json.NewEncoder(e.errOut)
	enc.SetIndent("", "  ")
	_ = enc.Encode(struct {
		api.ErrorBody
		ExitCode int `json:"exit_code"`
	}{body, code})
}

// newRootCmd builds the whole command tree; e receives the client and the
// output format once the flags are parsed.
func newRootCmd(e *clientEnv) *cobra.Command {
	root := &cobra.Command{
		Use:   "haven",
		Short: "Haven: backup and disaster recovery driven from Terraform",
		Long: `haven ` + buildinfo.Version + `: backup and disaster recovery driven from Terraform.

Run without arguments, haven serves the Terraform provider (Terraform starts it that way).
"haven server" runs the control plane, "haven agent" runs on a protected host, and the
other commands are a client of the server's API, for operators and CI pipelines.
Wherever a command takes an id it also takes the object's name.

` + envHelp + `

` + exitCodesHelp,
		Version:       buildinfo.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          group("", "").Args,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if !contains(outputFormats, e.output) {
				return usageErrorf("invalid argument %q for \"-o, --output\" flag: want one of %s", e.output, strings.Join(outputFormats, ", "))
			}
			if !needsServer(cmd) {
				return nil
			}
			c, err := clientFromEnv()
			if err != nil {
				return usageErrorf("HAVEN_ENDPOINT: %v", err)
			}
			e.client = c
			return nil
		},
	}
	root.SetVersionTemplate("haven {{.Version}}\n")
	root.SetOut(e.out)
	root.SetErr(e.errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVarP(&e.output, "output", "o", "table", "output format: table, json or yaml")
	_ = root.RegisterFlagCompletionFunc("output", fixedCompletion(outputFormats...))
	root.AddCommand(roleCommands()...)
	root.AddCommand(
		storageCommands(e), policyCommands(e), fileServerCommands(e), filesetCommands(e),
		vcenterCommands(e), awsTargetCommands(e), drPlanCommands(e), drRunCommands(e), protectedVMCommands(e), vmRuleCommands(e), databaseServerCommands(e), databaseSetCommands(e),
		nasDeviceCommands(e), nasShareCommands(e),
		pointCommands(e), jobCommands(e), backupCommands(e), restoreCommand(e),
		tokenCommands(e), auditCommands(e), agentCommands(e), whoamiCommand(e),
	)
	root.InitDefaultCompletionCmd()
	return root
}

// roleCommands are the binary's other roles; they keep their own flag
// parsing (the server's -h exits 2 as the standard flag package does).
func roleCommands() []*cobra.Command {
	role := func(use, short string, run func(ctx context.Context, args []string) int) *cobra.Command {
		return &cobra.Command{
			Use: use + " [flags]", Short: short, DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				if code := run(cmd.Context(), args); code != 0 {
					return exitError{code}
				}
				return nil
			},
		}
	}
	return []*cobra.Command{
		role("server", "run the control plane (haven server -h lists its flags)", func(ctx context.Context, args []string) int {
			return runServer(ctx, args, os.Stdout, os.Stderr)
		}),
		role("agent", "run the agent on a protected host (haven agent -h lists its flags)", runAgent),
		{Use: "version", Short: "print the version", Args: usageArgs(cobra.NoArgs),
			Run: func(cmd *cobra.Command, _ []string) { fmt.Fprintf(cmd.OutOrStdout(), "haven %s\n", buildinfo.Version) }},
	}
}

// needsServer says whether a command talks to the API: every client
// command does, the roles, help and completion scripts do not.
func needsServer(cmd *cobra.Command) bool {
	top := cmd
	for top.HasParent() && top.Parent().HasParent() {
		top = top.Parent()
	}
	switch top.Name() {
	case "server", "agent", "version", "help", "completion", "haven":
		return false
	}
	return true
}

// clientFromEnv connects to the server the environment names.
func clientFromEnv() (*api.Client, error) {
	return api.NewClient(api.ClientOptions{
		Endpoint: os.Getenv("HAVEN_ENDPOINT"), Token: os.Getenv("HAVEN_TOKEN"), CAFile: os.Getenv("HAVEN_CA_FILE"),
		InsecureSkipVerify: os.Getenv("HAVEN_INSECURE_SKIP_VERIFY") == "true", MaxRetries: 3,
		UserAgent: "haven-cli/" + buildinfo.Version,
	})
}

// usageArgs makes an argument-count check a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageErrorf("%s: %v (usage: %s)", cmd.CommandPath(), err, cmd.UseLine())
		}
		return nil
	}
}

// group is a noun that only holds verbs: alone it prints its help, with an
// unknown verb it is a usage error.
func group(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Aliases: aliases,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
}

// flagValue reads a flag value an option accepts from a fixed set, so
// that a bad one is refused by the parser (exit 2, naming the flag) and
// completes in the shell.
type choiceValue struct {
	value   *string
	choices []string
}

func newChoice(into *string, choices ...string) *choiceValue {
	return &choiceValue{value: into, choices: choices}
}

func (c *choiceValue) String() string { return *c.value }
func (c *choiceValue) Type() string   { return "string" }
func (c *choiceValue) Set(v string) error {
	if !contains(c.choices, v) {
		return fmt.Errorf("want one of %s", strings.Join(c.choices, ", "))
	}
	*c.value = v
	return nil
}

// choiceFlag adds a string flag limited to choices, completing them.
func choiceFlag(cmd *cobra.Command, into *string, name, usage string, choices ...string) {
	cmd.Flags().Var(newChoice(into, choices...), name, usage+" ("+strings.Join(choices, ", ")+")")
	_ = cmd.RegisterFlagCompletionFunc(name, fixedCompletion(choices...))
}

var _ pflag.Value = (*choiceValue)(nil)

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// show prints one object: JSON, or YAML with -o yaml (a single object has
// no table form).
func (e *clientEnv) show(v any, err error) error {
	if err != nil {
		return err
	}
	if e.output == "yaml" {
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = e.out.Write(b)
		return err
	}
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printTable prints items as aligned columns, or as JSON or YAML.
func printTable[T any](e *clientEnv, items []T, header []string, row func(T) []any) error {
	if e.output != "table" {
		if items == nil {
			items = []T{}
		}
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
