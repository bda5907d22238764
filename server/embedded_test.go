package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

func embeddedConfig(dataDir string) server.Config {
	return server.Config{Listen: "127.0.0.1:0", DataDir: dataDir, LogLevel: "info"}
}

func createProbeStorage(t *testing.T, srv *servertest.Server) *api.Storage {
	t.Helper()
	stg, err := srv.Client.Storages().Create(context.Background(), api.StorageRequest{StorageSpec: api.StorageSpec{Name: "survivor", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	return stg
}

// TestEmbeddedPostgresFirstStartAndRestart runs the server on its own
// embedded cluster, stops it cleanly, and starts it again on the same data.
func TestEmbeddedPostgresFirstStartAndRestart(t *testing.T) {
	dataDir := t.TempDir()
	first := servertest.Run(t, embeddedConfig(dataDir))
	if _, err := os.Stat(filepath.Join(dataDir, "postgres", "data", "PG_VERSION")); err != nil {
		t.Fatalf("no cluster under the data dir after first start: %v", err)
	}
	stg := createProbeStorage(t, first)
	token := first.AdminToken
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := first.Server.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postgres", "data", "postmaster.pid")); err == nil {
		t.Fatal("postmaster.pid remains after a clean shutdown: PostgreSQL was not stopped")
	}

	second := servertest.Run(t, embeddedConfig(dataDir))
	if second.AdminToken != token {
		t.Fatal("restart issued a new admin token instead of keeping the first")
	}
	got, err := second.Client.Storages().Get(context.Background(), stg.ID)
	if err != nil || got.Name != "survivor" {
		t.Fatalf("storage lost across restart: %v", err)
	}
}

// TestEmbeddedPostgresRestartAfterKill9 kills a real server process with
// SIGKILL mid-life and starts a new one on the same data dir.
func TestEmbeddedPostgresRestartAfterKill9(t *testing.T) {
	dataDir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childServerEnv+"="+strings.Join([]string{"--listen", "127.0.0.1:" + port, "--data-dir", dataDir}, "\x1f"))
	logFile, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	endpoint := "http://127.0.0.1:" + port
	token := waitForServer(t, endpoint, dataDir, logFile.Name())
	client, err := api.NewClient(api.ClientOptions{Endpoint: endpoint, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	stg, err := client.Storages().Create(context.Background(), api.StorageRequest{StorageSpec: api.StorageSpec{Name: "before-kill", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(dataDir, "postgres", "data", "postmaster.pid")); err != nil {
		t.Fatalf("expected the killed server to leave postmaster.pid behind: %v", err)
	}

	again := servertest.Run(t, embeddedConfig(dataDir))
	got, err := again.Client.Storages().Get(context.Background(), stg.ID)
	if err != nil || got.Name != "before-kill" {
		t.Fatalf("after kill -9 and restart: %v", err)
	}
}

// TestTwoServersStartTogetherOnOneDatabase starts two replicas at the same
// moment on a fresh database: both must come up (migrations serialize on
// the advisory lock) and exactly one first admin token is issued.
func TestTwoServersStartTogetherOnOneDatabase(t *testing.T) {
	url := testparts.PostgresURL(t)
	masterKey := filepath.Join(t.TempDir(), "master.key")
	var wg sync.WaitGroup
	servers := make([]*servertest.Server, 2)
	errs := make([]any, 2)
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { errs[i] = recover() }()
			cfg := embeddedConfig(t.TempDir())
			cfg.DatabaseURL = url
			cfg.MasterKeyFile = masterKey
			servers[i] = runNoFatal(t, cfg)
		}()
	}
	wg.Wait()
	var issued int
	for i, s := range servers {
		if errs[i] != nil || s == nil {
			t.Fatalf("replica %d failed to start: %v", i, errs[i])
		}
		if s.AdminToken != "" {
			issued++
		}
	}
	if issued != 1 {
		t.Fatalf("%d replicas wrote an admin token, want exactly 1", issued)
	}
	var withToken *servertest.Server
	for _, s := range servers {
		if s.AdminToken != "" {
			withToken = s
		}
	}
	// Both replicas serve the same data.
	stg := createProbeStorage(t, withToken)
	for _, s := range servers {
		c := s.NewClient(t, withToken.AdminToken)
		if got, err := c.Storages().Get(context.Background(), stg.ID); err != nil || got.ID != stg.ID {
			t.Fatalf("replica %s does not see the storage: %v", s.URL, err)
		}
	}
	tokens, err := withToken.Client.ListTokens(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens.Items) != 1 {
		t.Fatalf("%d tokens after two first starts, want 1", len(tokens.Items))
	}
}

// runNoFatal starts a server from a goroutine (t.Fatal must not be called
// off the test goroutine) and tolerates a missing admin.token file, which
// only one replica writes.
func runNoFatal(t *testing.T, cfg server.Config) *servertest.Server {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := server.Start(ctx, cfg, server.NewLogger(os.Stderr, "warn"))
	if err != nil {
		panic(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	token, _ := os.ReadFile(filepath.Join(cfg.DataDir, server.AdminTokenFile))
	s := &servertest.Server{URL: srv.URL(), AdminToken: strings.TrimSpace(string(token)), DataDir: cfg.DataDir, Server: srv}
	s.Client = s.NewClient(t, s.AdminToken)
	return s
}

func TestRefusesNonLoopbackWithoutTLS(t *testing.T) {
	_, err := server.ParseFlags([]string{"--listen", "0.0.0.0:8470", "--data-dir", t.TempDir()}, os.Stderr)
	if err == nil || !strings.Contains(err.Error(), "without TLS") || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("want a refusal that explains TLS, got %v", err)
	}
	if _, err := server.ParseFlags([]string{"--listen", "127.0.0.1:8470", "--data-dir", t.TempDir()}, os.Stderr); err != nil {
		t.Fatalf("loopback without TLS must be accepted: %v", err)
	}
	_, err = server.ParseFlags([]string{"--tls-cert", "x.pem", "--data-dir", t.TempDir()}, os.Stderr)
	if err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("a cert without a key must be refused: %v", err)
	}
}

func TestServesTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	srv := servertest.StartWith(t, func(c *server.Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("URL %s is not https", srv.URL)
	}
	c, err := api.NewClient(api.ClientOptions{Endpoint: srv.URL, Token: srv.AdminToken, CAFile: certFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Storages().List(context.Background(), "", 0); err != nil {
		t.Fatalf("TLS call with the CA: %v", err)
	}
	untrusting, _ := api.NewClient(api.ClientOptions{Endpoint: srv.URL, Token: srv.AdminToken})
	if _, err := untrusting.Storages().List(context.Background(), "", 0); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client without the CA must fail on the certificate, got %v", err)
	}
}

func writeSelfSigned(t *testing.T, dir string) (string, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "haven-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// waitForServer polls until the child server has written its admin token
// and answers /readyz.
func waitForServer(t *testing.T, endpoint, dataDir, logPath string) string {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		token, err := os.ReadFile(filepath.Join(dataDir, server.AdminTokenFile))
		if err == nil {
			c, _ := api.NewClient(api.ClientOptions{Endpoint: endpoint})
			var h api.Health
			if c.Do(context.Background(), "GET", "/readyz", nil, nil, &h) == nil && h.Status == "ok" {
				return strings.TrimSpace(string(token))
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs, _ := os.ReadFile(logPath)
	t.Fatalf("child server did not come up; its log:\n%s", logs)
	return ""
}
