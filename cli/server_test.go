package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestServerHelpListsDev: `haven server -h` lists every flag the command
// takes, --dev included, and --dev passes the same flag parsing as the
// others (so -dev and --dev=true work too).
func TestServerHelpListsDev(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runServer(context.Background(), []string{"-h"}, &out, &errOut); code != 2 {
		t.Fatalf("haven server -h: exit %d, want 2", code)
	}
	for _, flag := range []string{"-dev", "-data-dir", "-listen"} {
		if !strings.Contains(errOut.String(), "  "+flag) {
			t.Errorf("haven server -h does not list %s:\n%s", flag, errOut.String())
		}
	}
	errOut.Reset()
	if code := runServer(context.Background(), []string{"--dev=true", "--listen", "0.0.0.0:1"}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "refusing to listen") {
		t.Fatalf("haven server --dev=true with a bad flag: exit %d, %s", code, errOut.String())
	}
}
