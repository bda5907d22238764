// Package buildinfo holds the version stamped into the binary at release
// time (goreleaser sets these through -ldflags -X).
package buildinfo

var (
	Version = "dev"
	Commit  = ""
)
