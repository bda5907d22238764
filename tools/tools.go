//go:build tools

// Package tools pins the build tools in a module of their own, so their
// dependencies never mix with the provider's.
package tools

import (
	_ "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs"
)
