// Package agent is `haven agent`: it runs on a protected host, dials out
// to the server only, and does the host's backups and restores. It chunks
// and names data locally, asks the server which chunks are missing, and
// uploads only those; the server seals, packs and stores them. See
// server/api/agent.go for the protocol.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// Config is what `haven agent` is started with.
type Config struct {
	Server          string
	ActivationToken string
	StateDir        string
	CAFile          string
	Insecure        bool
	// Concurrency bounds jobs run at once.
	Concurrency int
	// PollWait is the long-poll duration.
	PollWait time.Duration
	Log      *slog.Logger
	// RestoreRoots are the only directories of this host a restore may
	// write under, whatever the server asks: the host's owner names them
	// here, so a server (or a stolen server token) cannot write anywhere
	// else. None (the default) refuses every restore.
	RestoreRoots []string
}

const credentialFile = "credential"

// Run activates the agent if it has no credential yet, then takes work
// until ctx ends. Jobs for this host wait in the server's queue while the
// agent is away.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = 20 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.StateDir == "" {
		return errors.New("--state-dir is required")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return err
	}
	anon, err := api.NewClient(api.ClientOptions{Endpoint: cfg.Server, CAFile: cfg.CAFile, InsecureSkipVerify: cfg.Insecure, MaxRetries: 5, UserAgent: "haven-agent"})
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	token, err := credential(ctx, anon, cfg)
	if err != nil {
		return err
	}
	a := &agent{cfg: cfg, client: anon.WithToken(token), running: map[string]bool{}}
	// The agent's own credential is never backed up or restored over.
	if a.readable, err = confine.New([]string{"/"}, []string{cfg.StateDir}, ""); err != nil {
		return err
	}
	if a.writable, err = confine.New(cfg.RestoreRoots, []string{cfg.StateDir}, " (this host's restore roots are set with haven agent --restore-roots)"); err != nil {
		return fmt.Errorf("--restore-roots: %w", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	a.instance = hex.EncodeToString(b[:])
	cfg.Log.Info("haven agent running", "server", anon.Endpoint(), "instance", a.instance)
	return a.loop(ctx)
}

// credential reads the agent's credential from the state dir, or trades
// the activation token for one and stores it (0600). The log never shows
// either.
func credential(ctx context.Context, c *api.Client, cfg Config) (string, error) {
	path := filepath.Join(cfg.StateDir, credentialFile)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if cfg.ActivationToken == "" {
		return "", fmt.Errorf("no credential in %s and no --activation-token to register with", cfg.StateDir)
	}
	host, _ := os.Hostname()
	var act api.Activation
	if err := c.Do(ctx, http.MethodPost, "/v1/agents/activate", nil, api.ActivateRequest{ActivationToken: cfg.ActivationToken, Hostname: host}, &act); err != nil {
		return "", fmt.Errorf("registering with the server: %w", err)
	}
	if err := keys.WriteFileAtomic(path, []byte(act.Token+"\n"), 0o600); err != nil {
		return "", err
	}
	cfg.Log.Info("agent registered", "file_server_id", act.FileServerID, "credential_file", path)
	return act.Token, nil
}

type agent struct {
	cfg    Config
	client *api.Client
	// readable confines backups, writable restores.
	readable, writable *confine.Roots
	instance           string
	mu                 sync.Mutex
	running            map[string]bool
	wg                 sync.WaitGroup
}

func (a *agent) loop(ctx context.Context) error {
	slots := make(chan struct{}, a.cfg.Concurrency)
	go a.heartbeat(ctx)
	defer a.wg.Wait()
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		work, err := a.poll(ctx)
		if err != nil || work == nil {
			<-slots
			if err != nil && ctx.Err() == nil {
				a.cfg.Log.Warn("polling for work", "error", err.Error())
				time.Sleep(2 * time.Second)
			}
			continue
		}
		a.mu.Lock()
		if a.running[work.JobID] {
			a.mu.Unlock()
			<-slots
			continue
		}
		a.running[work.JobID] = true
		a.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer func() { <-slots }()
			a.run(ctx, work)
			a.mu.Lock()
			delete(a.running, work.JobID)
			a.mu.Unlock()
		}()
	}
	return nil
}

// poll asks for work, telling the server which jobs this process runs: a
// job it claimed earlier but let go (it could not report the end) comes
// back to it instead of staying claimed for good.
func (a *agent) poll(ctx context.Context) (*api.AgentWork, error) {
	q := url.Values{"instance": {a.instance}, "wait": {a.cfg.PollWait.String()}}
	a.mu.Lock()
	if len(a.running) > 0 {
		q.Set("running", strings.Join(slices.Sorted(maps.Keys(a.running)), ","))
	}
	a.mu.Unlock()
	rc, err := a.client.Stream(ctx, http.MethodGet, "/v1/agent/work?"+q.Encode(), nil, "application/json")
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var w api.AgentWork
	if err := decodeBody(rc, &w); err != nil {
		return nil, err
	}
	if w.JobID == "" {
		return nil, nil
	}
	return &w, nil
}

func (a *agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.client.Do(ctx, http.MethodPost, "/v1/agent/heartbeat", nil, struct{}{}, nil); err != nil && ctx.Err() == nil {
				a.cfg.Log.Warn("heartbeat", "error", err.Error())
			}
		}
	}
}
