// Package cli dispatches the haven binary's roles and implements the thin
// client CLI (haven <noun> <verb>, on spf13/cobra) over server/api.
package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/havenbackup/terraform-provider-haven/internal/buildinfo"
	"github.com/havenbackup/terraform-provider-haven/provider"
)

// ProviderAddress is the provider's registry address.
const ProviderAddress = "registry.terraform.io/havenbackup/haven"

// Main runs the role named by args[0] and returns the exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 0 || args[0] == "-debug" || args[0] == "--debug" {
		return serveProvider(ctx, args)
	}
	switch args[0] {
	case "-version", "--version":
		args = []string{"version"}
	case "-help", "-h", "--help":
		args = []string{"--help"}
	}
	return runClient(ctx, args)
}

func serveProvider(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("haven", flag.ContinueOnError)
	debug := fs.Bool("debug", false, "run the provider with support for debuggers like delve")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	err := providerserver.Serve(ctx, provider.New(buildinfo.Version), providerserver.ServeOpts{
		Address: ProviderAddress, Debug: *debug, ProtocolVersion: 6,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
