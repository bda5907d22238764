package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/driver"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
)

// Config is everything `haven server` is started with.
type Config struct {
	Listen      string
	DataDir     string
	DatabaseURL string
	TLSCert     string
	TLSKey      string
	// Dev asks for a development server (server/devmode), which the
	// haven binary starts instead of a plain one.
	Dev bool
	// MasterKeyFile defaults to <data-dir>/master.key.
	MasterKeyFile string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// PprofListen, when set, serves Go's runtime profiles on this loopback
	// address (see profiling.go); empty (the default) serves none.
	PprofListen string
	// Role is all (API and job workers), api (API and scheduling only) or
	// worker (job workers and a health endpoint).
	Role string
	// JobWorkers bounds jobs run at once by this process.
	JobWorkers int
	// VCenterConcurrency bounds the VM backups running at once against
	// one vCenter, over every replica and worker node.
	VCenterConcurrency int
	// JanitorEvery is how often orphaned VM snapshots are looked for and
	// the audit log is pruned (zero: 15 minutes), SelectionEvery how often
	// selection rules are matched against the inventory (zero: 5
	// minutes); tests shorten them.
	JanitorEvery, SelectionEvery time.Duration
	// DREvery is how often the DR reconciler looks for DR plans whose
	// replication is due (zero: every minute); tests shorten it.
	DREvery time.Duration
	// DRPoll is how often failovers and DR tests check their instances
	// (zero: every 5 seconds); tests shorten it. DRDial, when set,
	// replaces the TCP dial of a machine's probe port (tests reach no
	// instance).
	DRPoll time.Duration
	DRDial func(ctx context.Context, address string) error
	// RescueAfter is how long a job attempt may go without a sign of life
	// before it is taken for dead and run again (zero: 10 minutes).
	RescueAfter time.Duration
	// JobAttempts bounds the attempts of a failing job (zero: 3).
	JobAttempts int
	// ScheduleEvery is how often the schedule reconciler looks for due
	// backups; tests shorten it. Now is its clock (nil: the real one).
	ScheduleEvery time.Duration
	Now           func() time.Time
	// AgentOfflineAfter is how long an agent may be silent and still count
	// as online (zero: 90 s); tests shorten it.
	AgentOfflineAfter time.Duration
	// AuditRetention is how long audit log entries are kept; the janitor
	// deletes older ones. Zero keeps them forever.
	AuditRetention time.Duration
	// RetentionEvery is how often retention sweeps every asset (zero: hourly).
	RetentionEvery time.Duration
	// GCGrace and TouchGranularity tune the repository GC protocol (zero:
	// one hour and ten minutes); tests shorten them.
	GCGrace, TouchGranularity time.Duration
	// LocalRoots are the directories of the server's own host that
	// file servers of location "server" may back up and restore to. None
	// (the default) keeps the Haven host out of reach; the data dir, the
	// master key, the token files and the TLS key are never reached,
	// whatever the roots say.
	LocalRoots []string
	// ExtraDrivers and ExtraAssetTables add workloads to the built-in ones
	// (a test's made-up asset kind); nil for a real server.
	ExtraDrivers     []driver.Driver
	ExtraAssetTables []driver.Decoder
}

// Server roles.
const (
	RoleAll    = "all"
	RoleAPI    = "api"
	RoleWorker = "worker"
)

// DefaultAuditRetention is how long `haven server` keeps audit log
// entries unless told otherwise: a year, which covers the usual yearly
// access review.
const DefaultAuditRetention = "365d"

// DefaultListen is the API's default address: loopback only.
const DefaultListen = "127.0.0.1:8470"

// ParseFlags reads the command line; every flag falls back to an
// environment variable, and the flag wins when both are given.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("haven server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&c.Listen, "listen", env("HAVEN_LISTEN", DefaultListen), "address to serve the API on ($HAVEN_LISTEN)")
	fs.StringVar(&c.DataDir, "data-dir", env("HAVEN_DATA_DIR", defaultDataDir()), "directory for the server's state ($HAVEN_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", env("HAVEN_DATABASE_URL", ""), "PostgreSQL URL; empty runs an embedded cluster under <data-dir>/postgres ($HAVEN_DATABASE_URL)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("HAVEN_TLS_CERT", ""), "TLS certificate file ($HAVEN_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", env("HAVEN_TLS_KEY", ""), "TLS private key file ($HAVEN_TLS_KEY)")
	fs.StringVar(&c.MasterKeyFile, "master-key-file", env("HAVEN_MASTER_KEY_FILE", ""), "master key file; default <data-dir>/master.key ($HAVEN_MASTER_KEY_FILE)")
	fs.StringVar(&c.LogLevel, "log-level", env("HAVEN_LOG_LEVEL", "info"), "debug, info, warn or error ($HAVEN_LOG_LEVEL)")
	fs.StringVar(&c.Role, "role", env("HAVEN_ROLE", RoleAll), "all; api (serves the API and queues jobs, runs none); worker (runs jobs and schedules; proxy nodes) ($HAVEN_ROLE)")
	fs.StringVar(&c.PprofListen, "pprof-listen", env("HAVEN_PPROF_LISTEN", ""), "loopback address to serve Go runtime profiles on (net/http/pprof, no authentication); off by default ($HAVEN_PPROF_LISTEN)")
	fs.BoolVar(&c.Dev, "dev", false, "development server: also starts a vCenter simulator with VMs, creates a local storage, and writes <data-dir>/dev.env with the endpoint, admin token and logins (source it)")
	fs.IntVar(&c.JobWorkers, "job-workers", 4, "jobs this process runs at once")
	fs.IntVar(&c.VCenterConcurrency, "vcenter-concurrency", 4, "VM backups that may run at once against one vCenter, across all servers")
	fs.Func("local-roots", "comma-separated directories of this host that file servers with location \"server\" may back up and restore to; none by default ($HAVEN_LOCAL_ROOTS)", func(v string) error {
		c.LocalRoots = confine.SplitList(v)
		return nil
	})
	c.LocalRoots = confine.SplitList(os.Getenv("HAVEN_LOCAL_ROOTS"))
	auditRetention := env("HAVEN_AUDIT_RETENTION", DefaultAuditRetention)
	fs.StringVar(&auditRetention, "audit-retention", auditRetention, "how long audit log entries are kept, such as 365d or 720h; 0 keeps them forever ($HAVEN_AUDIT_RETENTION)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if auditRetention != "0" {
		d, err := api.ParseTTL(auditRetention)
		if err != nil {
			return c, fmt.Errorf("--audit-retention: %w", err)
		}
		c.AuditRetention = d
	}
	return c, c.Validate()
}

func defaultDataDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "haven")
	}
	return ""
}

// Validate checks the configuration before anything starts.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir is required (no home directory to default to): set --data-dir or HAVEN_DATA_DIR")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	c.DataDir = abs
	if c.MasterKeyFile == "" {
		c.MasterKeyFile = filepath.Join(c.DataDir, "master.key")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	if c.TLSCert == "" && !isLoopback(host) {
		return fmt.Errorf("refusing to listen on %s without TLS: bearer tokens would cross the network in clear text; pass --tls-cert and --tls-key, or listen on a loopback address such as %s", c.Listen, DefaultListen)
	}
	for _, r := range c.LocalRoots {
		if !filepath.IsAbs(r) {
			return fmt.Errorf("--local-roots: %q is not an absolute path", r)
		}
	}
	if c.PprofListen != "" {
		host, _, err := net.SplitHostPort(c.PprofListen)
		if err != nil {
			return fmt.Errorf("--pprof-listen %q: %w", c.PprofListen, err)
		}
		if !isLoopback(host) {
			return fmt.Errorf("--pprof-listen %s: profiles are served without authentication, so only on a loopback address such as 127.0.0.1:6060", c.PprofListen)
		}
	}
	switch c.Role {
	case "", RoleAll, RoleAPI, RoleWorker:
	default:
		return fmt.Errorf("--role must be all, api or worker, got %q", c.Role)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level must be debug, info, warn or error, got %q", c.LogLevel)
	}
	return nil
}

// localRoots confines server-local backups and restores to --local-roots,
// and keeps them out of the server's own secrets whatever the roots say.
func (c *Config) localRoots() (*confine.Roots, error) {
	deny := []string{c.DataDir, c.MasterKeyFile, filepath.Join(c.DataDir, AdminTokenFile), c.TLSKey}
	r, err := confine.New(c.LocalRoots, deny, " (the Haven host's roots are set with haven server --local-roots)")
	if err != nil {
		return nil, fmt.Errorf("--local-roots: %w", err)
	}
	return r, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
