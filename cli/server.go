package cli

import (
	"context"
	"os"

	"github.com/havenbackup/terraform-provider-haven/server"
)

func runServer(ctx context.Context, args []string) int {
	return server.Main(ctx, args, os.Stderr)
}
