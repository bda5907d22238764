package server_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

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

// TestIssueActivation covers POST /v1/file-servers/{id}/activation: a new
// one-time token replaces the unused one, activates the agent, and, used
// on a host enrolled before, revokes the old agent's credential.
func TestIssueActivation(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	c := srv.Client.WithToken(srv.AdminToken)
	created, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "nas", Hostname: "nas01.example.com", OS: api.OSLinux, Location: api.LocationAgent}})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := c.IssueActivation(ctx, "nas") // by name, as Get takes it
	if err != nil {
		t.Fatal(err)
	}
	if issued.FileServerID != created.ID || len(issued.ActivationToken) < 20 || issued.ActivationToken == created.ActivationToken {
		t.Fatalf("issued %+v for file server %s (created with token %q)", issued, created.ID, created.ActivationToken)
	}
	_, err = activate(ctx, c, created.ActivationToken)
	wantStatus(t, "activating with the token the new one replaced", err, http.StatusUnauthorized)

	first, err := activate(ctx, c, issued.ActivationToken)
	if err != nil || first.FileServerID != created.ID {
		t.Fatalf("activating with the issued token: %+v, %v", first, err)
	}
	_, err = activate(ctx, c, issued.ActivationToken)
	wantStatus(t, "activating twice with one token", err, http.StatusUnauthorized)

	// Re-enrolment: issuing a token leaves the running agent alone until
	// another agent activates with it.
	again, err := c.IssueActivation(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
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
	_, err = c.IssueActivation(ctx, here.ID)
	wantStatus(t, "a token for a file server without an agent", err, http.StatusUnprocessableEntity)
	_, err = c.IssueActivation(ctx, "no-such-host")
	wantStatus(t, "a token for a file server that does not exist", err, http.StatusNotFound)
}
