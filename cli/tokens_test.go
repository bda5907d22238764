package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestTokensAndAudit: `haven tokens create --ttl` makes an expiring token,
// `haven tokens list` shows expiry and last use, and `haven audit list`
// shows the writes, filtered, to admins only.
func TestTokensAndAudit(t *testing.T) {
	srv := servertest.Start(t)
	t.Setenv("HAVEN_ENDPOINT", srv.URL)
	t.Setenv("HAVEN_TOKEN", srv.AdminToken)

	code, out, _ := haven(t, "tokens", "create", "ci", "read_only", "--ttl", "30d", "-o", "json")
	var ci api.CreatedToken
	if code != 0 || json.Unmarshal([]byte(out), &ci) != nil {
		t.Fatalf("tokens create --ttl: exit %d", code)
	}
	if ci.ExpiresAt == nil || ci.ExpiresAt.Before(time.Now().Add(29*24*time.Hour)) {
		t.Fatalf("tokens create --ttl 30d: expires_at %v", ci.ExpiresAt)
	}
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	code, out, _ = haven(t, "tokens", "create", "ops", "operator", "--expires", at.Format(time.RFC3339), "-o", "json")
	var ops api.CreatedToken
	if code != 0 || json.Unmarshal([]byte(out), &ops) != nil || ops.ExpiresAt == nil || !ops.ExpiresAt.Equal(at) {
		t.Fatalf("tokens create --expires %s: exit %d, expires_at %v", at.Format(time.RFC3339), code, ops.ExpiresAt)
	}
	if code, _, errOut := haven(t, "tokens", "create", "x", "read_only", "--expires", "tomorrow"); code == 0 || !strings.Contains(errOut, "--expires") {
		t.Fatalf("tokens create --expires tomorrow: exit %d, want a refusal naming --expires", code)
	}

	code, out, _ = haven(t, "tokens", "list")
	if code != 0 || !strings.Contains(out, "LAST USED") || !strings.Contains(out, "EXPIRES") {
		t.Fatalf("tokens list: exit %d, want EXPIRES and LAST USED columns", code)
	}
	for _, line := range strings.Split(out, "\n") {
		// The admin token listing the tokens has been used; ci has not.
		if strings.Contains(line, "bootstrap-admin") && strings.Count(line, "never") != 1 {
			t.Errorf("bootstrap-admin row %q: want a last-used time and no expiry", line)
		}
		if strings.Contains(line, ci.ID) && !strings.Contains(line, ci.ExpiresAt.Local().Format(time.RFC3339)) {
			t.Errorf("ci row %q: want its expiry %s", line, ci.ExpiresAt.Local().Format(time.RFC3339))
		}
	}

	code, out, _ = haven(t, "audit", "list")
	if code != 0 || !strings.Contains(out, "/v1/tokens") || !strings.Contains(out, ci.ID) || !strings.Contains(out, "bootstrap-admin") {
		t.Fatalf("audit list: exit %d, want the token creation by bootstrap-admin", code)
	}
	if strings.Contains(out, ci.Secret) {
		t.Fatal("audit list prints a token secret")
	}
	code, out, _ = haven(t, "audit", "list", "--method", "DELETE", "--since", "1h")
	if code != 0 || strings.Contains(out, "/v1/tokens") {
		t.Fatalf("audit list --method DELETE: exit %d, want no POST listed", code)
	}
	code, out, _ = haven(t, "audit", "list", "--limit", "1")
	if code != 0 || !strings.Contains(out, "more: --page-token ") {
		t.Fatalf("audit list --limit 1: exit %d, want a page token for the rest", code)
	}
	if code, _, errOut := haven(t, "audit", "list", "--since", "last week"); code == 0 || !strings.Contains(errOut, "--since") {
		t.Fatalf("audit list --since 'last week': exit %d, want a refusal naming --since", code)
	}
	t.Setenv("HAVEN_TOKEN", ci.Secret)
	if code, _, errOut := haven(t, "audit", "list"); code == 0 || !strings.Contains(errOut, "audit log") {
		t.Fatalf("audit list as read_only: exit %d, want a refusal", code)
	}
}
