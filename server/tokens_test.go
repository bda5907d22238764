package server_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// findToken lists the tokens and returns the one with this id.
func findToken(t *testing.T, c *api.Client, id string) api.Token {
	t.Helper()
	page, err := c.ListTokens(context.Background(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range page.Items {
		if tok.ID == id {
			return tok
		}
	}
	t.Fatalf("token %s is not listed", id)
	return api.Token{}
}

// TestTokenExpiry: a token is created with expires_at or a TTL, refuses
// both or nonsense naming the field, and once expired is refused with a 401
// that says it expired (and a revoked one, that it was revoked).
func TestTokenExpiry(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()

	before := time.Now()
	withTTL, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "ci", Role: api.RoleOperator, TTL: "30d"})
	if err != nil {
		t.Fatal(err)
	}
	if e := withTTL.ExpiresAt; e == nil || e.Before(before.Add(30*24*time.Hour)) || e.After(time.Now().Add(30*24*time.Hour)) {
		t.Fatalf("ttl 30d gave expires_at %v, want 30 days from creation", e)
	}
	at := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	withAt, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "ci2", Role: api.RoleReadOnly, ExpiresAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	if withAt.ExpiresAt == nil || !withAt.ExpiresAt.Equal(at) || !findToken(t, srv.Client, withAt.ID).ExpiresAt.Equal(at) {
		t.Fatalf("expires_at %v, want %v", withAt.ExpiresAt, at)
	}
	forever, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "forever", Role: api.RoleReadOnly})
	if err != nil || forever.ExpiresAt != nil {
		t.Fatalf("token without expiry: %v %+v", err, forever)
	}

	past := time.Now().Add(-time.Minute)
	for _, bad := range []struct {
		req   api.TokenRequest
		field string
	}{
		{api.TokenRequest{Name: "x", Role: api.RoleReadOnly, TTL: "1h", ExpiresAt: &at}, "ttl"},
		{api.TokenRequest{Name: "x", Role: api.RoleReadOnly, TTL: "soon"}, "ttl"},
		{api.TokenRequest{Name: "x", Role: api.RoleReadOnly, TTL: "-5m"}, "ttl"},
		{api.TokenRequest{Name: "x", Role: api.RoleReadOnly, TTL: "0d"}, "ttl"},
		{api.TokenRequest{Name: "x", Role: api.RoleReadOnly, TTL: "99999d"}, "ttl"},
		{api.TokenRequest{Name: "x", Role: api.RoleReadOnly, ExpiresAt: &past}, "expires_at"},
	} {
		_, err := srv.Client.CreateToken(ctx, bad.req)
		wantAPIError(t, "token "+bad.req.TTL, err, http.StatusBadRequest, bad.field)
	}

	short, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "short", Role: api.RoleReadOnly, TTL: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	shortClient := srv.NewClient(t, short.Secret)
	// Wait for the expiry to pass on this (the server's) clock; what is
	// checked is the answer after it, not how long anything took.
	time.Sleep(time.Until(*short.ExpiresAt) + 50*time.Millisecond)
	err = shortClient.Do(ctx, http.MethodGet, "/v1/whoami", nil, nil, nil)
	wantAPIError(t, "expired token", err, http.StatusUnauthorized, "Authorization", "short", "expired at")

	if err := srv.Client.RevokeToken(ctx, forever.ID); err != nil {
		t.Fatal(err)
	}
	err = srv.NewClient(t, forever.Secret).Do(ctx, http.MethodGet, "/v1/whoami", nil, nil, nil)
	wantAPIError(t, "revoked token", err, http.StatusUnauthorized, "Authorization", "revoked at")
}

// TestTokenLastUsed: a token's last use is recorded and listed, but not on
// every request: a second request right after the first leaves it alone.
func TestTokenLastUsed(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	tok, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "reader", Role: api.RoleReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if got := findToken(t, srv.Client, tok.ID).LastUsedAt; got != nil {
		t.Fatalf("unused token lists last_used_at %v", got)
	}
	reader := srv.NewClient(t, tok.Secret)
	before := time.Now().Add(-time.Second) // the database's clock may lag ours a little
	if _, err := reader.Storages().List(ctx, "", 0); err != nil {
		t.Fatal(err)
	}
	first := findToken(t, srv.Client, tok.ID).LastUsedAt
	if first == nil || first.Before(before) {
		t.Fatalf("used token lists last_used_at %v, want a time after %v", first, before)
	}
	if _, err := reader.Storages().List(ctx, "", 0); err != nil {
		t.Fatal(err)
	}
	if again := findToken(t, srv.Client, tok.ID).LastUsedAt; again == nil || !again.Equal(*first) {
		t.Fatalf("a second use within a minute moved last_used_at from %v to %v: one write per request", first, again)
	}
	// The admin listing the tokens used its own token too.
	if findToken(t, srv.Client, mustWhoami(t, srv.Client).ID).LastUsedAt == nil {
		t.Fatal("the admin token's use is not recorded")
	}
}

func mustWhoami(t *testing.T, c *api.Client) api.Token {
	t.Helper()
	var who api.Token
	if err := c.Do(context.Background(), http.MethodGet, "/v1/whoami", nil, nil, &who); err != nil {
		t.Fatal(err)
	}
	return who
}

// TestAdminTokenRotation follows the documented rotation: create a new
// admin token, revoke the bootstrap one, delete admin.token. Restarts
// after each step neither refuse to start nor issue a second bootstrap
// token while a live admin token exists.
func TestAdminTokenRotation(t *testing.T) {
	cfg := server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), DatabaseURL: testparts.PostgresURL(t), LogLevel: "info"}
	file := filepath.Join(cfg.DataDir, server.AdminTokenFile)
	ctx := context.Background()
	start := func() (*servertest.Server, func()) {
		t.Helper()
		s, err := server.Start(ctx, cfg, server.NewLogger(os.Stderr, "warn"))
		if err != nil {
			t.Fatalf("server start: %v", err)
		}
		ts := &servertest.Server{URL: s.URL(), Server: s}
		return ts, func() {
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
	}
	srv, stop := start()
	bootstrap, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	boot := srv.NewClient(t, strings.TrimSpace(string(bootstrap)))
	bootID := mustWhoami(t, boot).ID
	next, err := boot.CreateToken(ctx, api.TokenRequest{Name: "admin-2026", Role: api.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	admin := srv.NewClient(t, next.Secret)
	if err := admin.RevokeToken(ctx, bootID); err != nil {
		t.Fatal(err)
	}
	stop()

	bootstrapTokens := func(c *api.Client) int {
		t.Helper()
		page, err := c.ListTokens(ctx, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, tok := range page.Items {
			if tok.Name == "bootstrap-admin" {
				n++
			}
		}
		return n
	}
	// Restart with the revoked token still in the file: no new one.
	srv, stop = start()
	admin = srv.NewClient(t, next.Secret)
	if got, _ := os.ReadFile(file); string(got) != string(bootstrap) {
		t.Fatal("a restart rewrote admin.token although a live admin token exists")
	}
	if n := bootstrapTokens(admin); n != 1 {
		t.Fatalf("%d bootstrap-admin tokens after a restart, want the one revoked", n)
	}
	stop()

	// Delete the file and restart: the server starts and does not put it back.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	srv, stop = start()
	defer stop()
	admin = srv.NewClient(t, next.Secret)
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a restart recreated admin.token (%v) although a live admin token exists", err)
	}
	if n := bootstrapTokens(admin); n != 1 {
		t.Fatalf("%d bootstrap-admin tokens after a restart without the file, want the one revoked", n)
	}
	if mustWhoami(t, admin).Role != api.RoleAdmin {
		t.Fatal("the rotated admin token does not work")
	}
}
