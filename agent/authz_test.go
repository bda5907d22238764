package agent_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestAgentCredentialReachesOnlyItsOwnWork holds an agent's credential to
// its own file server's work, with a second agent's credential: it cannot
// list assets or points, act on the first agent's jobs, or load chunks of
// a point its own job does not read, even in the same storage.
func TestAgentCredentialReachesOnlyItsOwnWork(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	srcA := t.TempDir()
	writeFiles(t, srcA, 5, 4<<10, 1)
	set, fsA, _ := agentFileset(t, srv.Client, srcA)
	// A second fileset of agent A, with a file agent B must not read.
	secretDir := t.TempDir()
	secret := []byte("payroll of team A: not for the agent of another host")
	if err := os.WriteFile(filepath.Join(secretDir, "payroll.txt"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	secretSet, err := srv.Client.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "payroll", FileServerID: fsA.ID,
		IncludePaths: []string{secretDir}, PolicyID: set.PolicyID, StorageID: set.StorageID}})
	if err != nil {
		t.Fatal(err)
	}
	stateA := t.TempDir()
	runAgent(t, srv.URL, fsA.ActivationToken, stateA)
	var points []string
	for _, id := range []string{set.ID, secretSet.ID} {
		j, err := srv.Client.BackupNow(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
			t.Fatalf("backup: %+v", j)
		}
		points = append(points, j.PointID)
	}
	credA, err := os.ReadFile(filepath.Join(stateA, "credential"))
	if err != nil {
		t.Fatal(err)
	}
	agentA := srv.NewClient(t, strings.TrimSpace(string(credA)))

	// Agent B, driven by hand with its own credential.
	fsB, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "host-b", Hostname: "b.example",
		OS: "linux", Location: api.LocationAgent, RestoreRoots: testRestoreRoots}})
	if err != nil {
		t.Fatal(err)
	}
	var act api.Activation
	if err := srv.NewClient(t, "").Do(ctx, http.MethodPost, "/v1/agents/activate", nil, api.ActivateRequest{ActivationToken: fsB.ActivationToken, Hostname: "b"}, &act); err != nil {
		t.Fatal(err)
	}
	agentB := srv.NewClient(t, act.Token)
	for _, path := range []string{"/v1/filesets", "/v1/points", "/v1/jobs", "/v1/file-servers/" + fsA.ID} {
		err := agentB.Do(ctx, http.MethodGet, path, nil, nil, &json.RawMessage{})
		wantStatus(t, "agent B: GET "+path, err, http.StatusForbidden)
	}

	// A restore of the first point onto B's host: B's job.
	if err := agentB.Do(ctx, http.MethodPost, "/v1/agent/heartbeat", nil, struct{}{}, nil); err != nil {
		t.Fatal(err)
	}
	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: points[0], TargetFileServerID: fsB.ID, TargetPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var work api.AgentWork
	for work.JobID == "" {
		if err := agentB.Do(ctx, http.MethodGet, "/v1/agent/work", url.Values{"instance": {"b"}, "wait": {"5s"}}, nil, &work); err != nil {
			t.Fatal(err)
		}
	}
	if work.JobID != r.ID || work.Kind != api.JobRestore {
		t.Fatalf("agent B's work: %+v", work)
	}
	jobPath := "/v1/agent/jobs/" + work.JobID

	// Agent A's credential cannot act on B's job.
	for _, call := range []struct {
		path string
		body any
	}{
		{"/complete", api.AgentComplete{}}, {"/fail", api.AgentFail{Error: "sabotage"}}, {"/progress", api.AgentProgress{}},
		{"/has", api.HasRequest{IDs: []string{work.Root}}}, {"/load", api.LoadRequest{IDs: []string{work.Root}}},
	} {
		err := agentA.Do(ctx, http.MethodPost, jobPath+call.path, nil, call.body, nil)
		wantStatus(t, "agent A on agent B's job: "+call.path, err, http.StatusConflict)
	}

	// B reads its own point's chunks, and not those of another point of
	// the same storage, whose ids it can compute with the storage's id key.
	var key [32]byte
	copy(key[:], work.IDKey)
	load := func(id string) error {
		body, _ := json.Marshal(api.LoadRequest{IDs: []string{id}})
		rc, err := agentB.Stream(ctx, http.MethodPost, jobPath+"/load", body, "application/json")
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		return err
	}
	if err := load(work.Root); err != nil {
		t.Fatalf("agent B loading its own point's root: %v", err)
	}
	err = load(format.NewHasher(key).Sum(secret).String())
	wantStatus(t, "agent B loading a chunk of another asset's point", err, http.StatusForbidden)

	if err := agentB.Do(ctx, http.MethodPost, jobPath+"/fail", nil, api.AgentFail{Error: "test over"}, nil); err != nil {
		t.Fatal(err)
	}
}

func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	e, ok := err.(*api.Error)
	if !ok || e.Status != status {
		t.Errorf("%s: got %v, want %d", what, err, status)
	}
}

// TestAgentRefusesRestoresOutsideItsRoots: the server allows the restore
// (the file server's restore_roots hold the target), but the agent's own
// --restore-roots do not: the agent refuses and writes nothing. It does
// not trust the server blindly.
func TestAgentRefusesRestoresOutsideItsRoots(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, 5, 4<<10, 1)
	set, fsrv, _ := agentFileset(t, srv.Client, src)
	allowed := t.TempDir()
	runAgentWith(t, agent.Config{Server: srv.URL, ActivationToken: fsrv.ActivationToken, StateDir: t.TempDir(), RestoreRoots: []string{allowed}})
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}

	elsewhere := t.TempDir()
	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: j.PointID, TargetPath: elsewhere})
	if err != nil {
		t.Fatalf("the server should accept a target within the file server's restore_roots: %v", err)
	}
	if r = waitJob(t, srv, r.ID); r.State != api.JobFailed || !strings.Contains(r.Error, "--restore-roots") {
		t.Fatalf("a restore outside the agent's roots: %+v", r)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("the refused restore wrote %d entries into %s", len(entries), elsewhere)
	}

	// Inside them it restores.
	r, err = srv.Client.Restore(ctx, api.RestoreRequest{PointID: j.PointID, TargetPath: allowed})
	if err != nil {
		t.Fatal(err)
	}
	if r = waitJob(t, srv, r.ID); r.State != api.JobSucceeded {
		t.Fatalf("a restore inside the agent's roots: %+v", r)
	}
	if len(tree(t, filepath.Join(allowed, src))) < 5 {
		t.Errorf("nothing restored under %s", allowed)
	}
}
