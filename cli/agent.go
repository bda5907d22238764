package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/engine/confine"
)

func runAgent(ctx context.Context, args []string) int {
	if len(args) > 0 && args[0] == "wal-push" {
		return runWALPush(args[1:])
	}
	fs := flag.NewFlagSet("haven agent", flag.ContinueOnError)
	env := func(name string) string { return os.Getenv(name) }
	var cfg agent.Config
	fs.StringVar(&cfg.Server, "server", env("HAVEN_ENDPOINT"), "the Haven server's URL ($HAVEN_ENDPOINT)")
	fs.StringVar(&cfg.ActivationToken, "activation-token", env("HAVEN_ACTIVATION_TOKEN"), "one-time token from the file server's creation or haven file-servers activation ($HAVEN_ACTIVATION_TOKEN)")
	fs.StringVar(&cfg.StateDir, "state-dir", env("HAVEN_AGENT_STATE_DIR"), "where the agent keeps its credential ($HAVEN_AGENT_STATE_DIR)")
	fs.StringVar(&cfg.CAFile, "ca-file", env("HAVEN_CA_FILE"), "PEM bundle to trust for the server's certificate ($HAVEN_CA_FILE)")
	fs.BoolVar(&cfg.Insecure, "insecure-skip-verify", false, "do not verify the server's certificate")
	fs.IntVar(&cfg.Concurrency, "concurrency", 2, "jobs run at once")
	cfg.RestoreRoots = confine.SplitList(env("HAVEN_AGENT_RESTORE_ROOTS"))
	fs.Func("restore-roots", "comma-separated directories of this host restores may write under, whatever the server asks; none (the default) refuses every restore ($HAVEN_AGENT_RESTORE_ROOTS)", func(v string) error {
		cfg.RestoreRoots = confine.SplitList(v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := agent.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "haven agent:", err)
		return 1
	}
	return 0
}

// runWALPush is `haven agent wal-push [--state-dir DIR] PATH`, a
// PostgreSQL cluster's archive_command: it hands one WAL file to the
// host's agent through its spool (see agent.WALPush). PostgreSQL runs it
// in the data directory, as the cluster's owner; it exits non-zero, and
// the cluster keeps the file and retries, when the file could not be
// handed over.
func runWALPush(args []string) int {
	fs := flag.NewFlagSet("haven agent wal-push", flag.ContinueOnError)
	stateDir := fs.String("state-dir", os.Getenv("HAVEN_AGENT_STATE_DIR"), "the agent's state directory ($HAVEN_AGENT_STATE_DIR)")
	dataDir := fs.String("data-dir", "", "the cluster's data directory (default: the working directory, as archive_command runs)")
	fs.Usage = func() {
		io.WriteString(fs.Output(), "usage: haven agent wal-push [--state-dir DIR] PATH   (archive_command = 'haven agent wal-push --state-dir DIR %p')\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *stateDir == "" {
		fs.Usage()
		return 2
	}
	if *dataDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			fmt.Fprintln(os.Stderr, "haven agent wal-push:", err)
			return 1
		}
		*dataDir = wd
	}
	if err := agent.WALPush(*stateDir, *dataDir, fs.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "haven agent wal-push:", err)
		return 1
	}
	return 0
}
