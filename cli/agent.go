package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/engine/confine"
)

func runAgent(ctx context.Context, args []string) int {
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
