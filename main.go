// Command haven is one binary with three roles: with no argument it serves
// the Terraform provider; "server" runs the control plane; "agent" runs on a
// protected host; anything else is the client CLI.
package main

import (
	"os"

	"github.com/havenbackup/terraform-provider-haven/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
