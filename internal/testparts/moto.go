// Package testparts starts the real external parts that tests need.
package testparts

import (
	"bufio"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Credentials and region that the shared moto server accepts. Moto does not
// check credentials unless asked to (see MotoWithAuth), but requests must still
// be signed with some.
const (
	MotoRegion          = "us-east-1"
	MotoAccessKeyID     = "testing"
	MotoSecretAccessKey = "testing"
)

const motoInstallHint = "install it with: pip install 'moto[server]'"

// motoStartTimeout covers a cold Python start on a loaded machine.
const motoStartTimeout = 60 * time.Second

var shared struct {
	mu  sync.Mutex
	srv *motoServer
	err error
}

// Moto returns the endpoint URL ("http://127.0.0.1:PORT") of a moto_server
// shared by all tests of this test process, starting it on first use.
//
// One server per process, rather than one per test, keeps test time down
// (a start costs about a second of Python imports); tests stay independent by
// using their own buckets (MotoBucket). The server is not stopped by t.Cleanup,
// because it outlives the test that started it: a package using Moto stops it
// from TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testparts.StopMoto()
//		os.Exit(code)
//	}
//
// If the test process dies without doing so (a timeout panic, a kill), Linux
// still kills the server along with it.
//
// The server runs with Haven's plug-in (moto_haven.py) loaded, which adds
// what moto lacks for the disaster-recovery tests: EBS direct APIs that behave
// like AWS's, EC2 volumes that hold data, and a route to write to them (see
// MotoEBSClient, MotoEC2Client, MotoWriteVolumeBlock). S3 is moto's own.
//
// If moto_server is not installed or does not start, the test fails with a hint
// on how to install it: it is never skipped.
func Moto(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = startMoto()
	}
	if shared.err != nil {
		// Remembered so that the remaining tests fail at once instead of each
		// waiting for a start that cannot work.
		t.Fatalf("moto: %v", shared.err)
	}
	return shared.srv.endpoint
}

// StopMoto stops the shared server started by Moto, if any. A later Moto call
// starts a new one.
func StopMoto() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.stop()
	}
	shared.srv, shared.err = nil, nil
}

// MotoBucket creates a new bucket with a unique name derived from the test's
// name on the moto server at endpoint, and returns its name. Buckets are not
// deleted: moto keeps them in memory, which goes when the server stops.
func MotoBucket(t testing.TB, endpoint string) string {
	t.Helper()
	bucket := bucketName(t.Name())
	if err := createBucket(t.Context(), endpoint, MotoAccessKeyID, MotoSecretAccessKey, bucket); err != nil {
		t.Fatalf("moto: create bucket %s: %v", bucket, err)
	}
	return bucket
}

// MotoS3Client returns an S3 client for the moto server at endpoint, for tests
// that need to look at a bucket behind a store's back.
func MotoS3Client(endpoint string) *s3.Client {
	return motoClient(endpoint, MotoAccessKeyID, MotoSecretAccessKey)
}

func motoClient(endpoint, keyID, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:       MotoRegion,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(keyID, secret, ""),
	})
}

func createBucket(ctx context.Context, endpoint, keyID, secret, bucket string) error {
	_, err := motoClient(endpoint, keyID, secret).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	return err
}

// bucketName makes a valid S3 bucket name (3-63 characters of [a-z0-9-],
// starting and ending with a letter or digit) that is unique in this process.
func bucketName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case 'a' <= r && r <= 'z' || '0' <= r && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	base := strings.Trim(b.String(), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	return "t-" + base + "-" + hex.EncodeToString(suffix[:])
}

// motoPlugin is Haven's plug-in for moto (moto_haven.py): it adds to moto's
// classes what the disaster-recovery tests need from EC2 and the EBS direct
// APIs, then runs moto's server. That file lists what it adds.
//
//go:embed moto_haven.py
var motoPlugin []byte

type motoServer struct {
	endpoint string
	cmd      *exec.Cmd
	exited   chan struct{}
	log      *tailBuffer
	// dir holds the plug-in script; it goes when the server stops.
	dir string
}

// startMoto starts moto's server, with Haven's plug-in loaded, on a free
// loopback port and waits until it answers HTTP. The server runs as
// "PYTHON moto_haven.py -H 127.0.0.1 -p PORT", where PYTHON is the
// interpreter of the moto_server script, so that it imports the same moto.
func startMoto() (*motoServer, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, fmt.Errorf("moto_server is not on PATH (%v); %s", err, motoInstallHint)
	}
	python, err := motoPython(bin)
	if err != nil {
		return nil, err
	}
	// Between finding a free port and moto binding it another process may take
	// it; then moto exits and we try another port.
	var lastErr error
	for range 3 {
		srv, err := startMotoOnce(python)
		if err == nil {
			return srv, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	return nil, lastErr
}

// motoPython returns the Python interpreter that runs the moto_server script
// at path: the one its shebang line names, or python3 from PATH if the script
// names none (a pyenv shim is a shell script, say).
func motoPython(script string) (string, error) {
	if python := shebangPython(script); python != "" {
		return python, nil
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		return "", fmt.Errorf("%s names no Python interpreter and python3 is not on PATH (%v); %s", script, err, motoInstallHint)
	}
	return python, nil
}

// shebangPython returns the Python interpreter named by the script's "#!"
// line, or "" if it names none or that does not exist. Besides
// "#!/path/to/python" it understands "#!/usr/bin/env python3" and the
// two-line form pip writes when the interpreter's path is too long for a
// shebang line:
//
//	#!/bin/sh
//	'''exec' "/long/path/bin/python" "$0" "$@"
func shebangPython(script string) string {
	f, err := os.Open(script)
	if err != nil {
		return ""
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, 4096))
	first, _ := r.ReadString('\n')
	second, _ := r.ReadString('\n')
	line, ok := strings.CutPrefix(strings.TrimSpace(first), "#!")
	if !ok {
		return ""
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return ""
	}
	interp := fields[0]
	if filepath.Base(interp) == "env" {
		// env's options and VAR=value assignments come before the command.
		interp = ""
		for _, f := range fields[1:] {
			if !strings.HasPrefix(f, "-") && !strings.Contains(f, "=") {
				interp = f
				break
			}
		}
	}
	if filepath.Base(interp) == "sh" {
		rest, ok := strings.CutPrefix(strings.TrimSpace(second), "'''exec' ")
		if !ok {
			return ""
		}
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			interp, _ = strconv.Unquote(q)
		} else if fields := strings.Fields(rest); len(fields) > 0 {
			interp = fields[0]
		}
	}
	if !strings.HasPrefix(filepath.Base(interp), "python") {
		return ""
	}
	path, err := exec.LookPath(interp)
	if err != nil {
		return ""
	}
	return path
}

func startMotoOnce(python string) (srv *motoServer, err error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// The plug-in is written out for each server and removed when it stops.
	dir, err := os.MkdirTemp("", "haven-moto-")
	if err != nil {
		return nil, fmt.Errorf("writing the moto plug-in: %v", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	plugin := filepath.Join(dir, "moto_haven.py")
	if err := os.WriteFile(plugin, motoPlugin, 0o600); err != nil {
		return nil, fmt.Errorf("writing the moto plug-in: %v", err)
	}
	srv = &motoServer{
		endpoint: "http://127.0.0.1:" + strconv.Itoa(port),
		exited:   make(chan struct{}),
		log:      &tailBuffer{max: 64 << 10},
		dir:      dir,
	}
	srv.cmd = exec.Command(python, plugin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	srv.cmd.Stdout = srv.log
	srv.cmd.Stderr = srv.log
	srv.cmd.SysProcAttr = parentDeathSignal()

	started := make(chan error, 1)
	go func() {
		// Linux sends the parent-death signal when the thread that started the
		// child ends, not the process; pinning this goroutine to its thread
		// until moto exits keeps that thread alive as long as moto runs.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := srv.cmd.Start()
		started <- err
		if err == nil {
			_ = srv.cmd.Wait()
		}
		close(srv.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting moto with %s: %v; %s", python, err, motoInstallHint)
	}

	deadline := time.Now().Add(motoStartTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(srv.endpoint + "/moto-api/data.json")
		if err == nil {
			_ = resp.Body.Close()
			return srv, nil
		}
		select {
		case <-srv.exited:
			return nil, fmt.Errorf("moto (%s %s) exited during start-up (%v); its output:\n%s\nIf moto is broken, reinstall it: %s", python, plugin, srv.cmd.ProcessState, srv.log, motoInstallHint)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			srv.stop()
			return nil, fmt.Errorf("moto_server did not answer on %s within %v; its output:\n%s", srv.endpoint, motoStartTimeout, srv.log)
		}
	}
}

func (m *motoServer) stop() {
	_ = m.cmd.Process.Kill()
	<-m.exited
	_ = os.RemoveAll(m.dir)
}

// parentDeathSignal asks the kernel to kill moto if the test process dies
// without stopping it. The field exists only on Linux (and FreeBSD); setting it
// by name keeps this file building everywhere, where the safety net is simply
// absent.
func parentDeathSignal() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
	return attr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it: moto logs every request,
// and only the end matters when it fails.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// MotoAuthServer is a dedicated moto server that checks request signatures and
// IAM permissions like AWS does, for tests of wrong or insufficient
// credentials.
type MotoAuthServer struct {
	Endpoint string
	// Bucket exists on the server.
	Bucket string
	// Allowed belongs to a user that may do anything on S3.
	Allowed Credentials
	// Denied belongs to a user without any permission.
	Denied Credentials
}

// Credentials is an access key pair.
type Credentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
}

// MotoWithAuth starts a moto server of its own (authentication is a
// server-wide switch, so it cannot be the shared one), sets up a bucket and
// two IAM users, switches authentication on, and stops the server in
// t.Cleanup.
func MotoWithAuth(t testing.TB) MotoAuthServer {
	t.Helper()
	srv, err := startMoto()
	if err != nil {
		t.Fatalf("moto: %v", err)
	}
	t.Cleanup(srv.stop)
	ctx := t.Context()
	m := MotoAuthServer{Endpoint: srv.endpoint, Bucket: bucketName(t.Name())}
	if err := createBucket(ctx, m.Endpoint, MotoAccessKeyID, MotoSecretAccessKey, m.Bucket); err != nil {
		t.Fatalf("moto: create bucket: %v", err)
	}
	const allowAll = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`
	if m.Allowed, err = iamUser(ctx, m.Endpoint, "haven-allowed", allowAll); err != nil {
		t.Fatalf("moto: %v", err)
	}
	if m.Denied, err = iamUser(ctx, m.Endpoint, "haven-denied", ""); err != nil {
		t.Fatalf("moto: %v", err)
	}
	// From now on every request must be signed by a known key and allowed.
	if err := motoAPI(ctx, m.Endpoint, "/moto-api/reset-auth", "0"); err != nil {
		t.Fatalf("moto: enabling authentication: %v", err)
	}
	return m
}

// iamUser creates an IAM user with an access key and, if policy is not empty,
// an inline policy, through moto's IAM query API. Moto does not check these
// requests' signatures while authentication is off, so they go unsigned.
func iamUser(ctx context.Context, endpoint, user, policy string) (Credentials, error) {
	if err := iamCall(ctx, endpoint, url.Values{"Action": {"CreateUser"}, "UserName": {user}}, nil); err != nil {
		return Credentials{}, err
	}
	if policy != "" {
		v := url.Values{"Action": {"PutUserPolicy"}, "UserName": {user}, "PolicyName": {"p"}, "PolicyDocument": {policy}}
		if err := iamCall(ctx, endpoint, v, nil); err != nil {
			return Credentials{}, err
		}
	}
	var out struct {
		Key Credentials `xml:"CreateAccessKeyResult>AccessKey"`
	}
	if err := iamCall(ctx, endpoint, url.Values{"Action": {"CreateAccessKey"}, "UserName": {user}}, &out); err != nil {
		return Credentials{}, err
	}
	if out.Key.AccessKeyID == "" || out.Key.SecretAccessKey == "" {
		return Credentials{}, fmt.Errorf("IAM CreateAccessKey for %s: no key in the answer", user)
	}
	return out.Key, nil
}

// iamCall sends one IAM query API request and decodes the XML answer into out
// if it is not nil.
func iamCall(ctx context.Context, endpoint string, form url.Values, out any) error {
	form.Set("Version", "2010-05-08")
	action := form.Get("Action")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// Moto routes a request by the service named in its credential scope.
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+MotoAccessKeyID+"/20240101/"+MotoRegion+"/iam/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("IAM %s: %v", action, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("IAM %s: %v", action, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("IAM %s: %s: %s", action, resp.Status, body)
	}
	if out != nil {
		if err := xml.Unmarshal(body, out); err != nil {
			return fmt.Errorf("IAM %s: decoding the answer: %v", action, err)
		}
	}
	return nil
}

func motoAPI(ctx context.Context, endpoint, path, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s: %s", path, resp.Status, b)
	}
	return nil
}

// StartMoto starts a moto server of its own, with the plug-in, for a
// program that is not a test (the DR benchmark); stop ends it.
func StartMoto() (endpoint string, stop func(), err error) {
	srv, err := startMoto()
	if err != nil {
		return "", nil, err
	}
	return srv.endpoint, srv.stop, nil
}
