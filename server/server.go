// Package server is Haven's control plane: the REST API over PostgreSQL
// with authentication and authorization, and the wiring of the job engine
// behind it (engine.go): the queue (server/jobs), the workload drivers
// (server/driver, server/drivers/...), the executors of each job kind
// (server/executors) and the reconcilers (server/reconcile).
package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/internal/buildinfo"
	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/auth"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/dr"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/files"
	"github.com/havenbackup/terraform-provider-haven/server/jobs"
)

// AdminTokenFile is the name, under the data dir, of the first admin token.
const AdminTokenFile = "admin.token"

// bootstrapLockID is the advisory lock that serializes first-start token
// issuance across replicas.
const bootstrapLockID = 0x68617665 // "have"

// Server is a running control plane.
type Server struct {
	cfg     Config
	log     *slog.Logger
	db      *db.DB
	pg      *pgembed.Cluster
	master  *keys.MasterKey
	metrics *metrics
	jobs    *engine
	// localRoots confine backups and restores on the server's own host.
	localRoots *confine.Roots
	http       *http.Server
	listener   net.Listener
	// profiles serves runtime profiles when --pprof-listen is set.
	profiles *http.Server
	served   chan error
}

// NewLogger builds the structured JSON logger every part of the server uses.
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(requestIDHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})})
}

// Start brings the server up: data dir, database (embedded unless a URL is
// given), migrations, master key, first admin token, and the listener. It
// returns once the API is accepting connections.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, metrics: newMetrics(), served: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.closeBackends(context.Background())
		}
	}()
	// The address is taken first: a server that cannot serve fails at
	// once, before it starts a database or takes jobs it could not report.
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		s.listener = tls.NewListener(s.listener, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	if cfg.PprofListen != "" {
		if s.profiles, err = s.startProfiling(cfg.PprofListen); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if s.master, err = keys.LoadOrCreate(cfg.MasterKeyFile); err != nil {
		return nil, err
	}
	if s.localRoots, err = cfg.localRoots(); err != nil {
		return nil, err
	}
	url := cfg.DatabaseURL
	if url == "" {
		s.pg, err = pgembed.Start(ctx, pgembed.Options{Dir: filepath.Join(cfg.DataDir, "postgres"), Logger: log})
		if err != nil {
			return nil, err
		}
		url = s.pg.URL("haven")
		log.Info("embedded PostgreSQL running", "dir", filepath.Join(cfg.DataDir, "postgres"))
	}
	if s.db, err = db.Open(ctx, url); err != nil {
		return nil, err
	}
	if err := repo.Migrate(ctx, s.db.Pool); err != nil {
		return nil, err
	}
	if err := s.bootstrapAdminToken(ctx); err != nil {
		return nil, err
	}
	s.metrics.registry.MustRegister(newCatalogCollector(s.db, log, cfg.AgentOfflineAfter))
	if s.jobs, err = newEngine(ctx, url, s.master, log, cfg, engineConfig{
		jobs: jobs.Config{
			Workers: cfg.JobWorkers, ScheduleEvery: cfg.ScheduleEvery, Now: cfg.Now, NoWork: cfg.Role == RoleAPI,
			RetentionEvery: cfg.RetentionEvery, JanitorEvery: cfg.JanitorEvery, SelectionEvery: cfg.SelectionEvery,
			RescueAfter: cfg.RescueAfter, MaxAttempts: cfg.JobAttempts, Observer: s.metrics, DREvery: cfg.DREvery,
		},
		apiDB: s.db, localRoots: s.localRoots, extraDrivers: cfg.ExtraDrivers, extraTables: cfg.ExtraAssetTables,
	}); err != nil {
		return nil, err
	}
	// The job service lives until Shutdown, not until the start-up context ends.
	if err := s.jobs.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}

	s.http = &http.Server{
		Handler:           s.observe(s.routes()),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { s.served <- s.http.Serve(s.listener) }()
	log.Info("haven server listening", "address", s.Addr(), "tls", cfg.TLSCert != "", "version", buildinfo.Version)
	return s, nil
}

// Addr is the address the API listens on (useful with port 0).
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL is the API's base URL.
func (s *Server) URL() string {
	scheme := "http"
	if s.cfg.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + s.Addr()
}

// Done is closed-with-error when the listener stops on its own.
func (s *Server) Done() <-chan error { return s.served }

// Shutdown stops taking requests, lets those in flight finish (bounded by
// ctx), then closes the database and stops embedded PostgreSQL cleanly.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if s.jobs != nil {
		if jerr := s.jobs.Stop(ctx); jerr != nil {
			s.log.Error("stopping job workers", "error", jerr.Error())
		}
	}
	s.closeBackends(ctx)
	s.log.Info("haven server stopped")
	return err
}

func (s *Server) closeBackends(ctx context.Context) {
	if s.profiles != nil {
		s.profiles.Close()
	}
	if s.listener != nil && s.http == nil {
		s.listener.Close() // never served
	}
	if s.jobs != nil && s.http == nil {
		s.jobs.Close() // never started (Shutdown stops a started one)
	}
	if s.db != nil {
		s.db.Close()
	}
	if s.pg != nil {
		if err := s.pg.Stop(ctx); err != nil {
			s.log.Error("stopping embedded PostgreSQL", "error", err.Error())
		}
	}
}

// bootstrapAdminToken issues the first admin token and writes it to
// <data-dir>/admin.token (0600). It runs under an advisory lock so replicas
// starting together issue exactly one. Once any other admin token works,
// the file may be deleted (or hold a revoked token): the server then
// starts without it and issues no second bootstrap token. Only when no
// admin token works at all is a new one issued, so an installation can
// always be recovered by whoever holds the data dir. The token is never
// logged; the log names the file.
func (s *Server) bootstrapAdminToken(ctx context.Context) error {
	path := filepath.Join(s.cfg.DataDir, AdminTokenFile)
	return s.db.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, bootstrapLockID); err != nil {
			return err
		}
		existing, err := os.ReadFile(path)
		if err == nil {
			t, err := s.db.TokenByHash(ctx, tx, auth.Hash(strings.TrimSpace(string(existing))))
			if err == nil && t.Live(time.Now()) {
				return nil
			}
			if err != nil && !errors.Is(err, db.ErrNotFound) {
				return err
			}
		}
		n, err := s.db.CountLiveAdminTokens(ctx, tx)
		if err != nil {
			return err
		}
		if n > 0 {
			if existing != nil {
				s.log.Warn("the admin token file holds a token that no longer works; delete it", "file", path)
			} else {
				s.log.Info("admin tokens exist in the database; not issuing a first admin token", "file", path)
			}
			return nil
		}
		secret, hash := auth.NewSecret()
		if _, err := s.db.CreateToken(ctx, tx, "bootstrap-admin", api.RoleAdmin, nil, nil, hash); err != nil {
			return err
		}
		if err := keys.WriteFileAtomic(path, []byte(secret+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing admin token: %w", err)
		}
		s.log.Info("issued the first admin token", "file", path)
		return nil
	})
}

// route is one API operation: its mux pattern ("METHOD /path") and its
// handler. Who may call it is the authorization table's row for the
// pattern.
type route struct {
	pattern string
	handler http.HandlerFunc
}

func (s *Server) routeTable() []route {
	storages := storageKind(s.db, s.master, s.jobs)
	policies := policyKind(s.db, s.jobs)
	fileServers := fileServerKind(s.db, s.master, s.cfg.AgentOfflineAfter)
	vcenters := vcenterKind(s.db, s.master, s.jobs)
	awsTargets := awsTargetKind(s.db, s.master)
	drPlans := drPlanKind(s.db, time.Now, func(ctx context.Context, planID string) (int, error) {
		return dr.DeleteCopies(ctx, s.db, s.jobs.Service, s.master, planID)
	})
	filesets := filesetKind(s.db, s.localRoots)
	protectedVMs := protectedVMKind(s.db, s.master)
	vmRules := vmProtectionRuleKind(s.db, s.jobs)
	dbServers := databaseServerKind(s.db, s.master)
	dbSets := databaseSetKind(s.db)
	nasDevices := nasDeviceKind(s.db, s.master)
	nasShares := nasShareKind(s.db)
	op := func(pattern string, h http.HandlerFunc) route { return route{pattern: pattern, handler: h} }
	return []route{
		op("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, api.Health{Status: "ok"}) }),
		op("GET /readyz", s.readyz),
		op("GET /metrics", s.metrics.handler(s.log)),
		op("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			http.ServeContent(w, r, "openapi.json", time.Time{}, bytes.NewReader(api.OpenAPI))
		}),
		op("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, api.VersionInfo{Version: buildinfo.Version, Commit: buildinfo.Commit})
		}),

		op("GET /v1/storages", storages.list),
		op("POST /v1/storages", storages.create),
		op("POST /v1/storages/import", s.importStorage),
		op("GET /v1/storages/{id}", storages.get),
		op("PUT /v1/storages/{id}", storages.update),
		op("DELETE /v1/storages/{id}", storages.delete),

		op("GET /v1/backup-policies", policies.list),
		op("POST /v1/backup-policies", policies.create),
		op("GET /v1/backup-policies/{id}", policies.get),
		op("PUT /v1/backup-policies/{id}", policies.update),
		op("DELETE /v1/backup-policies/{id}", policies.delete),
		op("POST /v1/backup-policies/{id}/preview", s.previewRetention),

		op("GET /v1/file-servers", fileServers.list),
		op("POST /v1/file-servers", fileServers.create),
		op("GET /v1/file-servers/{id}", fileServers.get),
		op("PUT /v1/file-servers/{id}", fileServers.update),
		op("DELETE /v1/file-servers/{id}", fileServers.delete),
		op("POST /v1/file-servers/{id}/activation", s.issueActivation),

		op("GET /v1/filesets", filesets.list),
		op("POST /v1/filesets", filesets.create),
		op("GET /v1/filesets/{id}", filesets.get),
		op("PUT /v1/filesets/{id}", filesets.update),
		op("DELETE /v1/filesets/{id}", filesets.delete),

		op("GET /v1/vcenters", vcenters.list),
		op("POST /v1/vcenters", vcenters.create),
		op("GET /v1/vcenters/{id}", vcenters.get),
		op("PUT /v1/vcenters/{id}", vcenters.update),
		op("DELETE /v1/vcenters/{id}", vcenters.delete),
		op("GET /v1/vcenters/{id}/vms", s.listVMs),

		op("GET /v1/aws-targets", awsTargets.list),
		op("POST /v1/aws-targets", awsTargets.create),
		op("GET /v1/aws-targets/{id}", awsTargets.get),
		op("PUT /v1/aws-targets/{id}", awsTargets.update),
		op("DELETE /v1/aws-targets/{id}", awsTargets.delete),

		op("GET /v1/dr-plans", drPlans.list),
		op("POST /v1/dr-plans", drPlans.create),
		op("GET /v1/dr-plans/{id}", drPlans.get),
		op("PUT /v1/dr-plans/{id}", drPlans.update),
		op("DELETE /v1/dr-plans/{id}", drPlans.delete),
		op("POST /v1/dr-plans/{id}/replicate", s.replicateDRPlan),
		op("POST /v1/dr-plans/{id}/test", s.startDRTest),
		op("POST /v1/dr-plans/{id}/failover", s.startDRFailover),
		op("GET /v1/dr-runs", s.listDRRuns),
		op("GET /v1/dr-runs/{id}", s.getDRRun),
		op("POST /v1/dr-runs/{id}/cleanup", s.cleanupDRRun),
		op("POST /v1/dr-runs/{id}/failback", s.failbackDRRun),

		op("GET /v1/protected-vms", protectedVMs.list),
		op("POST /v1/protected-vms", createProtectedVM(protectedVMs)),
		op("GET /v1/protected-vms/{id}", protectedVMs.get),
		op("PUT /v1/protected-vms/{id}", protectedVMs.update),
		op("DELETE /v1/protected-vms/{id}", protectedVMs.delete),

		op("GET /v1/vm-protection-rules", vmRules.list),
		op("POST /v1/vm-protection-rules", vmRules.create),
		op("GET /v1/vm-protection-rules/{id}", vmRules.get),
		op("PUT /v1/vm-protection-rules/{id}", vmRules.update),
		op("DELETE /v1/vm-protection-rules/{id}", vmRules.delete),

		op("GET /v1/database-servers", dbServers.list),
		op("POST /v1/database-servers", dbServers.create),
		op("GET /v1/database-servers/{id}", dbServers.get),
		op("PUT /v1/database-servers/{id}", dbServers.update),
		op("DELETE /v1/database-servers/{id}", dbServers.delete),

		op("GET /v1/database-sets", dbSets.list),
		op("POST /v1/database-sets", dbSets.create),
		op("GET /v1/database-sets/{id}", dbSets.get),
		op("PUT /v1/database-sets/{id}", dbSets.update),
		op("DELETE /v1/database-sets/{id}", dbSets.delete),

		op("GET /v1/nas-devices", nasDevices.list),
		op("POST /v1/nas-devices", nasDevices.create),
		op("GET /v1/nas-devices/{id}", nasDevices.get),
		op("PUT /v1/nas-devices/{id}", nasDevices.update),
		op("DELETE /v1/nas-devices/{id}", nasDevices.delete),

		op("GET /v1/nas-shares", nasShares.list),
		op("POST /v1/nas-shares", nasShares.create),
		op("GET /v1/nas-shares/{id}", nasShares.get),
		op("PUT /v1/nas-shares/{id}", nasShares.update),
		op("DELETE /v1/nas-shares/{id}", nasShares.delete),

		op("POST /v1/assets/{id}/backup", s.backupNow),
		op("POST /v1/restores", s.startRestore),
		op("POST /v1/storages/{id}/verify", s.maintenance(api.JobVerify)),
		op("POST /v1/storages/{id}/gc", s.maintenance(api.JobGC)),
		op("GET /v1/jobs", s.listJobs),
		op("GET /v1/jobs/{id}", s.getJob),
		op("GET /v1/jobs/{id}/plan", s.getJobPlan),
		op("POST /v1/jobs/{id}/cancel", s.cancelJob),
		op("GET /v1/points", s.listPoints),
		op("GET /v1/points/{id}", getByID("recovery point", s.db.GetPoint)),
		op("PUT /v1/points/{id}/legal-hold", s.setLegalHold),
		op("GET /v1/points/{id}/entries", s.pointEntries),
		op("GET /v1/points/{id}/content", s.pointContent),
		op("GET /v1/points/find", s.findInPoints),
		op("GET /v1/points/diff", s.diffPoints),

		op("POST /v1/agents/activate", s.activateAgent),
		op("GET /v1/agent/work", s.agentWork),
		op("POST /v1/agent/heartbeat", s.agentHeartbeat),
		op("POST /v1/agent/jobs/{id}/has", agentJSON(s, func(h *files.Hub, r *http.Request, id, fs string, req api.HasRequest) (any, error) {
			return h.Has(r.Context(), id, fs, req)
		})),
		op("POST /v1/agent/jobs/{id}/chunks", s.agentUpload),
		op("POST /v1/agent/jobs/{id}/load", s.agentLoad),
		op("POST /v1/agent/jobs/{id}/progress", agentJSON(s, func(h *files.Hub, r *http.Request, id, fs string, req api.AgentProgress) (any, error) {
			return nil, h.Progress(r.Context(), id, fs, req)
		})),
		op("POST /v1/agent/jobs/{id}/complete", agentJSON(s, func(h *files.Hub, r *http.Request, id, fs string, req api.AgentComplete) (any, error) {
			return nil, h.Complete(r.Context(), id, fs, req)
		})),
		op("POST /v1/agent/jobs/{id}/fail", agentJSON(s, func(h *files.Hub, r *http.Request, id, fs string, req api.AgentFail) (any, error) {
			return nil, h.Fail(r.Context(), id, fs, req)
		})),
		op("POST /v1/agent/jobs/{id}/tail", agentJSON(s, func(h *files.Hub, r *http.Request, id, fs string, req api.AgentTail) (any, error) {
			return h.Tail(r.Context(), id, fs, req)
		})),

		op("GET /v1/tokens", s.listTokens),
		op("POST /v1/tokens", s.createToken),
		op("DELETE /v1/tokens/{id}", s.revokeToken),
		op("GET /v1/whoami", s.whoami),
		op("GET /v1/audit", s.listAudit),
	}
}

// Routes lists the patterns the API serves ("METHOD /path"), for tests that
// hold the routes and the OpenAPI document to each other.
func (s *Server) Routes() []string {
	var out []string
	for _, rt := range s.routeTable() {
		out = append(out, rt.pattern)
	}
	return out
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	paths := map[string]bool{}
	for _, rt := range s.routeTable() {
		if s.cfg.Role == RoleWorker && strings.Contains(rt.pattern, "/v1/") {
			// A worker (proxy node) runs jobs only; clients and agents
			// talk to API replicas, so it offers health and metrics alone.
			continue
		}
		h := textChecked(rt.pattern, rt.handler)
		switch access, ok := authorization[rt.pattern]; {
		case !ok:
			h = noAuthorizationRule
		case !access.Public:
			h = s.authenticate(access.Perm, h)
		}
		mux.HandleFunc(rt.pattern, h)
		_, path, _ := strings.Cut(rt.pattern, " ")
		paths[path] = true
	}
	// Everything else gets the API's error shape rather than the mux's
	// plain-text 404 and 405. A literal path that a wildcard path also
	// matches (/v1/storages/import and /v1/storages/{id}) gets none of
	// its own: its other methods are the wildcard route's, and the mux
	// refuses a catch-all there.
	for path := range paths {
		if !shadowsWildcard(path, paths) {
			mux.HandleFunc(path, methodNotAllowed)
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, &api.Error{Code: api.CodeNotFound, Status: http.StatusNotFound,
			Message: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// shadowsWildcard tells whether another of paths has a wildcard segment
// where path has a literal one, and matches it otherwise.
func shadowsWildcard(path string, paths map[string]bool) bool {
	segs := strings.Split(path, "/")
	for other := range paths {
		o := strings.Split(other, "/")
		if other == path || len(o) != len(segs) {
			continue
		}
		matches, wild := true, false
		for i := range segs {
			switch {
			case segs[i] == o[i]:
			case strings.HasPrefix(o[i], "{") && !strings.HasPrefix(segs[i], "{"):
				wild = true
			default:
				matches = false
			}
		}
		if matches && wild {
			return true
		}
	}
	return false
}

// noAuthorizationRule answers an operation the authorization table has no
// row for: refused to everyone, so a route added without a decision about
// who may call it is closed, not open.
func noAuthorizationRule(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, &api.Error{Code: api.CodeForbidden, Status: http.StatusForbidden,
		Message: fmt.Sprintf("%s has no row in the authorization table, so nobody may call it", r.Pattern)})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, &api.Error{Code: "method_not_allowed", Status: http.StatusMethodNotAllowed,
		Message: fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path)})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, api.Health{Status: "unavailable", Detail: "database unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
}

// Main runs `haven server` until ctx is canceled (SIGINT/SIGTERM), then
// shuts down gracefully. It returns the process exit code.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, err := ParseFlags(args, stderr)
	if err != nil {
		return FlagsFailed(stderr, err)
	}
	return Run(ctx, cfg, stderr)
}

// FlagsFailed reports a ParseFlags error (-h has printed the usage
// already) and returns the exit code for it.
func FlagsFailed(stderr io.Writer, err error) int {
	if !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "haven server:", err)
	}
	return 2
}

// Run is Main once the flags are parsed.
func Run(ctx context.Context, cfg Config, stderr io.Writer) int {
	log := NewLogger(stderr, cfg.LogLevel)
	slog.SetDefault(log)
	s, err := Start(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "haven server:", err)
		return 1
	}
	select {
	case <-ctx.Done():
	case err := <-s.Done():
		log.Error("listener stopped", "error", fmt.Sprint(err))
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(shutdownCtx); err != nil {
		log.Error("shutdown", "error", err.Error())
		return 1
	}
	return 0
}
