package cli

import (
	"context"
	"os"
	"slices"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/devmode"
)

func runServer(ctx context.Context, args []string) int {
	if i := slices.Index(args, "--dev"); i >= 0 {
		return devmode.Main(ctx, slices.Delete(slices.Clone(args), i, i+1), os.Stdout, os.Stderr)
	}
	return server.Main(ctx, args, os.Stderr)
}
