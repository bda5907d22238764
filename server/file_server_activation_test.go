package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// activate trades an activation token for an agent credential, as haven
// agent does on its first start.
func activate(ctx context.Context, c *api.Client, token string) (api.Activation, error) {
	var out api.Activation
	err := c.Do(ctx, http.MethodPost, "/v1/agents/activate", nil, api.ActivateRequest{ActivationToken: token, Hostname: "nas01"}, &out)
	return out, err
}

func heartbeat(ctx context.Context, c *api.Client, credential string) error {
	return c.WithToken(credential).Do(ctx, http.MethodPost, "/v1/agent/heartbeat", nil, nil, nil)
}

func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != status {
		t.Fatalf("%s: got %v, want HTTP %d", what, err, status)
	}
}

// TestIssueActivation covers POST /v1/file-servers/{id}/activation: the
// pending token is answered again while unused and unexpired, replace and
// expiry make a new one that replaces it, the token activates the agent,
// and, used on a host enrolled before, revokes the old agent's credential.
func TestIssueActivation(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	c := srv.Client.WithToken(srv.AdminToken)
	created, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "nas", Hostname: "nas01.example.com", OS: api.OSLinux, Location: api.LocationAgent}})
	if err != nil {
		t.Fatal(err)
	}
	// Asked again (each Terraform plan and apply does), the same token.
	issued, err := c.IssueActivation(ctx, "nas", false) // by name, as Get takes it
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(issued.ExpiresAt); issued.FileServerID != created.ID || issued.ActivationToken != created.ActivationToken ||
		left < 23*time.Hour || left > 24*time.Hour {
		t.Fatalf("issued %+v for file server %s (created with token %q)", issued, created.ID, created.ActivationToken)
	}
	replaced, err := c.IssueActivation(ctx, created.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(replaced.ActivationToken) < 20 || replaced.ActivationToken == created.ActivationToken {
		t.Fatalf("replace answered %+v, the token was %q", replaced, created.ActivationToken)
	}
	_, err = activate(ctx, c, created.ActivationToken)
	wantStatus(t, "activating with the token the new one replaced", err, http.StatusUnauthorized)

	// An expired token activates nothing, and the next call issues another.
	expire(t, srv.DatabaseURL, created.ID)
	_, err = activate(ctx, c, replaced.ActivationToken)
	wantStatus(t, "activating with an expired token", err, http.StatusUnauthorized)
	issued, err = c.IssueActivation(ctx, created.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if issued.ActivationToken == replaced.ActivationToken || time.Until(issued.ExpiresAt) < 23*time.Hour {
		t.Fatalf("after expiry: %+v", issued)
	}

	first, err := activate(ctx, c, issued.ActivationToken)
	if err != nil || first.FileServerID != created.ID {
		t.Fatalf("activating with the issued token: %+v, %v", first, err)
	}
	if err := heartbeat(ctx, c, first.Token); err != nil {
		t.Fatal(err)
	}
	_, err = activate(ctx, c, issued.ActivationToken)
	wantStatus(t, "activating twice with one token, the credential in use", err, http.StatusUnauthorized)

	// Re-enrolment: issuing a token leaves the running agent alone until
	// another agent activates with it.
	again, err := c.IssueActivation(ctx, created.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if again.ActivationToken == issued.ActivationToken {
		t.Fatal("a used token was answered again")
	}
	if err := heartbeat(ctx, c, first.Token); err != nil {
		t.Fatalf("the enrolled agent after a new token was issued: %v", err)
	}
	second, err := activate(ctx, c, again.ActivationToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := heartbeat(ctx, c, second.Token); err != nil {
		t.Fatalf("the re-enrolled agent: %v", err)
	}
	wantStatus(t, "the replaced agent's credential", heartbeat(ctx, c, first.Token), http.StatusUnauthorized)

	here, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "here", Hostname: "localhost", OS: api.OSLinux, Location: api.LocationServer}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.IssueActivation(ctx, here.ID, false)
	wantStatus(t, "a token for a file server without an agent", err, http.StatusUnprocessableEntity)
	_, err = c.IssueActivation(ctx, "no-such-host", false)
	wantStatus(t, "a token for a file server that does not exist", err, http.StatusNotFound)
	err = c.Do(ctx, http.MethodPost, "/v1/file-servers/nas/activation", nil, map[string]any{"replace": "yes"}, nil)
	wantStatus(t, "a replace that is not a boolean", err, http.StatusBadRequest)
}

// expire moves a file server's pending activation token past its expiry.
func expire(t *testing.T, databaseURL, fileServerID string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `UPDATE file_servers SET activation_expires_at = now() - interval '1 second' WHERE id = $1`, fileServerID); err != nil {
		t.Fatal(err)
	}
}

// TestRetriedActivationRequests: the client retries a POST whose answer
// was lost. A retried issue leaves one valid token, the one the caller
// got, and leaves an enrolled agent alone; a retried activation gets the
// agent a credential that works, and the one it never got does not.
func TestRetriedActivationRequests(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	fsrv, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "nas", Hostname: "nas01.example.com", OS: api.OSLinux, Location: api.LocationAgent}})
	if err != nil {
		t.Fatal(err)
	}
	lossy := func(path string) (*api.Client, func() [][]byte) {
		endpoint, lost := answerLosingProxy(t, srv.URL, func(r *http.Request) bool { return r.URL.Path == path })
		c, err := api.NewClient(api.ClientOptions{Endpoint: endpoint, Token: srv.AdminToken, MaxRetries: 3})
		if err != nil {
			t.Fatal(err)
		}
		return c, lost
	}
	lostToken := func(lost func() [][]byte) string {
		t.Helper()
		var a api.FileServerActivation
		if answers := lost(); len(answers) != 1 || json.Unmarshal(answers[0], &a) != nil || a.ActivationToken == "" {
			t.Fatalf("the lost answers: %q", answers)
		}
		return a.ActivationToken
	}
	issue := "/v1/file-servers/" + fsrv.ID + "/activation"

	// Replacing, retried: the first try's token, which nobody got, is
	// replaced by the retry's.
	c, lost := lossy(issue)
	got, err := c.IssueActivation(ctx, fsrv.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if unseen := lostToken(lost); unseen != got.ActivationToken {
		_, err = activate(ctx, srv.Client, unseen)
		wantStatus(t, "activating with the token of the lost answer", err, http.StatusUnauthorized)
	}
	// Not replacing, retried: the retry answers with the same token.
	c, lost = lossy(issue)
	again, err := c.IssueActivation(ctx, fsrv.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if unseen := lostToken(lost); unseen != got.ActivationToken || again.ActivationToken != got.ActivationToken {
		t.Fatalf("asked again for the pending token %q: lost %q, answered %q", got.ActivationToken, unseen, again.ActivationToken)
	}

	// The agent's activation, retried: the credential it gets works, and
	// the one in the lost answer does not.
	agentSide, lostActivation := lossy("/v1/agents/activate")
	enrolled, err := activate(ctx, agentSide.WithToken(""), got.ActivationToken)
	if err != nil {
		t.Fatalf("a retried activation: %v", err)
	}
	var unseen api.Activation
	if answers := lostActivation(); len(answers) != 1 || json.Unmarshal(answers[0], &unseen) != nil || unseen.Token == "" {
		t.Fatalf("the lost activation answers: %q", answers)
	}
	if err := heartbeat(ctx, srv.Client, enrolled.Token); err != nil || enrolled.FileServerID != fsrv.ID {
		t.Fatalf("the credential of a retried activation (file server %s): %v", enrolled.FileServerID, err)
	}
	wantStatus(t, "the credential in the lost answer", heartbeat(ctx, srv.Client, unseen.Token), http.StatusUnauthorized)
	// Once the credential is in use, the token gets nothing more.
	_, err = activate(ctx, srv.Client, got.ActivationToken)
	wantStatus(t, "the token again, its credential in use", err, http.StatusUnauthorized)

	// A retried issue for a host enrolled again leaves the enrolled agent
	// working until the new token is used.
	c, lost = lossy(issue)
	if _, err := c.IssueActivation(ctx, fsrv.ID, true); err != nil {
		t.Fatal(err)
	}
	lostToken(lost)
	if err := heartbeat(ctx, srv.Client, enrolled.Token); err != nil {
		t.Fatalf("the enrolled agent after a retried issue: %v", err)
	}
}
