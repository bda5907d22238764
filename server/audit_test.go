package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestAuditLog: every write is recorded with who, what, when, from where
// and its outcome, refusals included, reads not at all; the log never holds
// a secret, honours no forwarding header, and only admins page and filter
// it.
func TestAuditLog(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	start := time.Now().Add(-time.Second)
	reader, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "auditor", Role: api.RoleReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	st, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "local", Kind: api.StorageFilesystem, Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.Storages().Get(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	// A refused write from a read_only token, sent with a forged
	// forwarding header and a body that looks like a secret.
	raw := func(method, path, token, body string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	raw(http.MethodDelete, "/v1/storages/"+st.ID, reader.Secret, `{"password":"hunter2-secret"}`)
	raw(http.MethodPost, "/v1/storages", "", `{"name":"x"}`)
	raw(http.MethodPost, "/v1/storages", "hvn_"+strings.Repeat("A", 43), `{"name":"x"}`)

	page, err := srv.Client.ListAudit(ctx, api.AuditFilter{}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	admin := mustWhoami(t, srv.Client)
	type want struct {
		method, route, object, tokenID, role string
		status                               int
	}
	// Newest first; the GETs are not there.
	wants := []want{
		{"POST", "/v1/storages", "", "", "", http.StatusUnauthorized},
		{"POST", "/v1/storages", "", "", "", http.StatusUnauthorized},
		{"DELETE", "/v1/storages/{id}", st.ID, reader.ID, api.RoleReadOnly, http.StatusForbidden},
		{"POST", "/v1/storages", st.ID, admin.ID, api.RoleAdmin, http.StatusCreated},
		{"POST", "/v1/tokens", reader.ID, admin.ID, api.RoleAdmin, http.StatusCreated},
	}
	if len(page.Items) != len(wants) {
		t.Fatalf("audit log holds %d entries, want %d: %+v", len(page.Items), len(wants), page.Items)
	}
	for i, w := range wants {
		e := page.Items[i]
		if e.Method != w.method || e.Route != w.route || e.ObjectID != w.object || e.TokenID != w.tokenID || e.Role != w.role || e.Status != w.status {
			t.Errorf("entry %d: %+v, want %+v", i, e, w)
		}
		if e.RemoteAddr != "127.0.0.1" {
			t.Errorf("entry %d from %q, want the peer address 127.0.0.1 (no forwarding header trusted)", i, e.RemoteAddr)
		}
		if e.At.Before(start) || e.At.After(time.Now().Add(time.Second)) || e.RequestID == "" {
			t.Errorf("entry %d at %v with request id %q", i, e.At, e.RequestID)
		}
	}
	if page.Items[3].TokenName != "bootstrap-admin" || page.Items[2].TokenName != "auditor" {
		t.Errorf("entries name tokens %q and %q, want bootstrap-admin and auditor", page.Items[3].TokenName, page.Items[2].TokenName)
	}
	body, _ := json.Marshal(page)
	for _, secret := range []string{reader.Secret, srv.AdminToken, "hunter2-secret", "203.0.113.9"} {
		if strings.Contains(string(body), secret) {
			t.Fatalf("the audit log holds %q: %s", secret, body)
		}
	}

	// Filters and paging.
	byToken, err := srv.Client.ListAudit(ctx, api.AuditFilter{TokenID: reader.ID}, "", 0)
	if err != nil || len(byToken.Items) != 1 || byToken.Items[0].Status != http.StatusForbidden {
		t.Fatalf("token filter: %v %+v", err, byToken)
	}
	byObject, err := srv.Client.ListAudit(ctx, api.AuditFilter{ObjectID: st.ID, Method: "delete"}, "", 0)
	if err != nil || len(byObject.Items) != 1 || byObject.Items[0].Method != "DELETE" {
		t.Fatalf("object and method filter: %v %+v", err, byObject)
	}
	future := time.Now().Add(time.Hour)
	if none, err := srv.Client.ListAudit(ctx, api.AuditFilter{Since: &future}, "", 0); err != nil || len(none.Items) != 0 {
		t.Fatalf("since filter: %v %+v", err, none)
	}
	if all, err := srv.Client.ListAudit(ctx, api.AuditFilter{Until: &future}, "", 0); err != nil || len(all.Items) != len(wants) {
		t.Fatalf("until filter: %v %+v", err, all)
	}
	var paged []api.AuditEntry
	token := ""
	for {
		p, err := srv.Client.ListAudit(ctx, api.AuditFilter{Until: &future}, token, 2)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, p.Items...)
		if token = p.NextPageToken; token == "" {
			break
		}
	}
	if len(paged) != len(wants) || paged[len(paged)-1].ID != page.Items[len(wants)-1].ID {
		t.Fatalf("paging by 2 gave %d entries, want %d in the same order", len(paged), len(wants))
	}

	_, err = srv.NewClient(t, reader.Secret).ListAudit(ctx, api.AuditFilter{}, "", 0)
	wantAPIError(t, "read_only lists the audit log", err, http.StatusForbidden, "")
	_, err = srv.Client.ListAudit(ctx, api.AuditFilter{TokenID: "bob"}, "", 0)
	wantAPIError(t, "token_id filter", err, http.StatusBadRequest, "token_id")
	err = srv.Client.Do(ctx, http.MethodGet, "/v1/audit", map[string][]string{"since": {"yesterday"}}, nil, nil)
	wantAPIError(t, "since filter", err, http.StatusBadRequest, "since")
	err = srv.Client.Do(ctx, http.MethodGet, "/v1/audit", map[string][]string{"page_token": {"eA"}}, nil, nil)
	wantAPIError(t, "page token", err, http.StatusBadRequest, "page_token")
}

// TestAuditLogRetention: the janitor deletes audit entries older than
// --audit-retention and keeps the rest; a retention of zero keeps all.
func TestAuditLogRetention(t *testing.T) {
	ctx := context.Background()
	count := func(srv *servertest.Server, where string) int {
		t.Helper()
		conn, err := pgx.Connect(ctx, srv.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE "+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	age := func(srv *servertest.Server, entries int, by string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, srv.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `UPDATE audit_log SET at = at - $1::interval
			WHERE id IN (SELECT id FROM audit_log ORDER BY id LIMIT $2)`, by, entries); err != nil {
			t.Fatal(err)
		}
	}
	writes := func(srv *servertest.Server, n int) {
		t.Helper()
		for i := range n {
			if _, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: fmt.Sprintf("t%d", i), Role: api.RoleReadOnly}); err != nil {
				t.Fatal(err)
			}
		}
	}

	srv := servertest.StartWith(t, func(c *server.Config) {
		c.AuditRetention = 30 * 24 * time.Hour
		c.JanitorEvery = 200 * time.Millisecond
	})
	writes(srv, 6)
	age(srv, 4, "31 days")
	deadline := time.Now().Add(30 * time.Second)
	for count(srv, "at < now() - interval '30 days'") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("entries past the retention were never pruned:\n%s", srv.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := count(srv, "true"); n < 2 {
		t.Fatalf("pruning took entries inside the retention too: %d left", n)
	}
	if !strings.Contains(srv.Logs(), "audit log pruned") {
		t.Errorf("pruning was not logged:\n%s", srv.Logs())
	}

	forever := servertest.StartWith(t, func(c *server.Config) { c.JanitorEvery = 200 * time.Millisecond })
	writes(forever, 2)
	age(forever, 2, "3650 days")
	time.Sleep(time.Second) // several janitor runs
	if n := count(forever, "true"); n != 2 {
		t.Fatalf("with no retention every entry stays: %d of 2 left", n)
	}
}

func TestAuditRetentionFlag(t *testing.T) {
	c, err := server.ParseFlags([]string{"--data-dir", t.TempDir()}, io.Discard)
	if err != nil || c.AuditRetention != 365*24*time.Hour {
		t.Fatalf("default retention: %v, %v", c.AuditRetention, err)
	}
	if c, err = server.ParseFlags([]string{"--data-dir", t.TempDir(), "--audit-retention", "0"}, io.Discard); err != nil || c.AuditRetention != 0 {
		t.Fatalf("--audit-retention 0: %v, %v", c.AuditRetention, err)
	}
	if _, err = server.ParseFlags([]string{"--data-dir", t.TempDir(), "--audit-retention", "soon"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--audit-retention") {
		t.Fatalf("a bad retention must be refused naming the flag, got %v", err)
	}
}
