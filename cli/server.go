package cli

import (
	"context"
	"io"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/devmode"
)

// runServer runs `haven server`; --dev is one of its flags, so -h lists it
// with the others.
func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := server.ParseFlags(args, stderr)
	if err != nil {
		return server.FlagsFailed(stderr, err)
	}
	if cfg.Dev {
		return devmode.Run(ctx, cfg, stdout, stderr)
	}
	return server.Run(ctx, cfg, stderr)
}
