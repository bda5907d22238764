package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestFileServerActivation issues activation tokens with `haven
// file-servers activation`: the printed token activates the agent, the
// pending token is shown again until --replace, and a file server without
// an agent is refused.
func TestFileServerActivation(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	t.Setenv("HAVEN_ENDPOINT", srv.URL)
	t.Setenv("HAVEN_TOKEN", srv.AdminToken)
	for _, spec := range []api.FileServerSpec{
		{Name: "nas", Hostname: "nas01.example.com", OS: api.OSLinux, Location: api.LocationAgent},
		{Name: "here", Hostname: "localhost", OS: api.OSLinux, Location: api.LocationServer},
	} {
		if _, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: spec}); err != nil {
			t.Fatal(err)
		}
	}

	code, out, _ := haven(t, "file-servers", "activation", "nas")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "activation token") {
		t.Fatalf("exit %d, printed %q", code, out)
	}
	var act api.Activation
	if err := srv.Client.Do(ctx, http.MethodPost, "/v1/agents/activate", nil,
		api.ActivateRequest{ActivationToken: lines[1], Hostname: "nas01"}, &act); err != nil || act.Token == "" {
		t.Fatalf("activating with the printed token: %v", err)
	}

	code, out, _ = haven(t, "file-servers", "activation", "nas", "-o", "json")
	var issued api.FileServerActivation
	if err := json.Unmarshal([]byte(out), &issued); code != 0 || err != nil || issued.FileServerID != act.FileServerID || len(issued.ActivationToken) < 20 {
		t.Fatalf("exit %d, printed %q (%v)", code, out, err)
	}

	// Asked again, the pending token; --replace makes a new one, and the
	// pending one stops working.
	code, out, _ = haven(t, "file-servers", "activation", "nas", "-o", "json")
	var again api.FileServerActivation
	if err := json.Unmarshal([]byte(out), &again); code != 0 || err != nil || again.ActivationToken != issued.ActivationToken {
		t.Fatalf("asked again: exit %d, printed %q (%v), the pending token is %q", code, out, err, issued.ActivationToken)
	}
	code, out, _ = haven(t, "file-servers", "activation", "nas", "--replace", "-o", "json")
	var replaced api.FileServerActivation
	if err := json.Unmarshal([]byte(out), &replaced); code != 0 || err != nil || replaced.ActivationToken == issued.ActivationToken || len(replaced.ActivationToken) < 20 {
		t.Fatalf("--replace: exit %d, printed %q (%v)", code, out, err)
	}
	if err := srv.Client.Do(ctx, http.MethodPost, "/v1/agents/activate", nil,
		api.ActivateRequest{ActivationToken: issued.ActivationToken, Hostname: "nas01"}, &act); err == nil {
		t.Fatal("the token --replace replaced still activates")
	}

	code, _, stderr := haven(t, "file-servers", "activation", "here")
	if code != 1 || !strings.Contains(stderr, "no agent to activate") {
		t.Fatalf("a file server without an agent: exit %d, %q", code, stderr)
	}
}
