package s3store

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/storetest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopMoto()
	os.Exit(code)
}

// motoConfig returns a configuration for a new bucket on the shared moto.
func motoConfig(t *testing.T) Config {
	t.Helper()
	ep := testparts.Moto(t)
	return Config{
		Bucket:          testparts.MotoBucket(t, ep),
		Endpoint:        ep,
		Region:          testparts.MotoRegion,
		ForcePathStyle:  true,
		AccessKeyID:     testparts.MotoAccessKeyID,
		SecretAccessKey: testparts.MotoSecretAccessKey,
	}
}

func newStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New(%v): %v", cfg, err)
	}
	return s
}

func head(t *testing.T, cfg Config, key string) *s3.HeadObjectOutput {
	t.Helper()
	out, err := testparts.MotoS3Client(cfg.Endpoint).HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &cfg.Bucket, Key: &key})
	if err != nil {
		t.Fatalf("HeadObject %s: %v", key, err)
	}
	return out
}

func TestConformance(t *testing.T) {
	if DefaultPartSize >= storetest.LargeSize {
		t.Fatalf("the suite's large objects (%d bytes) would not use multipart uploads (part size %d)", storetest.LargeSize, DefaultPartSize)
	}
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t, motoConfig(t)) })
}

func TestMultipartParts(t *testing.T) {
	cfg := motoConfig(t)
	cfg.PartSize = MinPartSize
	s := newStore(t, cfg)
	data := storetest.Data(1, 2*MinPartSize+123)
	storetest.Put(t, s, "packs/big", data)
	// S3 gives a multipart object the ETag "<md5 of part md5s>-<parts>".
	if etag := aws.ToString(head(t, cfg, "packs/big").ETag); !strings.HasSuffix(strings.Trim(etag, `"`), "-3") {
		t.Fatalf("ETag %s: want an object uploaded in 3 parts", etag)
	}
	if got := storetest.Get(t, s, "packs/big", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("multipart object came back different")
	}
	storetest.Put(t, s, "packs/small", data[:MinPartSize])
	if etag := aws.ToString(head(t, cfg, "packs/small").ETag); strings.Contains(etag, "-") {
		t.Fatalf("ETag %s: an object of one part size should be a single PutObject", etag)
	}
}

func TestFailedMultipartIsAborted(t *testing.T) {
	cfg := motoConfig(t)
	cfg.PartSize = MinPartSize
	s := newStore(t, cfg)
	boom := errors.New("source broke")
	// The data fails in the third part, after two parts went up.
	err := s.Put(t.Context(), "packs/p", &storetest.FailingReader{N: 2*MinPartSize + 100, Err: boom}, 3*MinPartSize, store.PutOptions{})
	if !errors.Is(err, boom) || store.IsTransient(err) {
		t.Fatalf("multipart Put from a failing reader: got %v, want a permanent error wrapping the reader's", err)
	}
	_, err = s.Stat(t.Context(), "packs/p")
	storetest.WantNotFound(t, "Stat after a failed multipart Put", err)
	out, err := testparts.MotoS3Client(cfg.Endpoint).ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &cfg.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("%d multipart uploads were left behind", len(out.Uploads))
	}
}

func TestPrefix(t *testing.T) {
	cfg := motoConfig(t)
	root := newStore(t, cfg)
	cfgA, cfgB := cfg, cfg
	cfgA.Prefix = "/tenant-a/"
	cfgB.Prefix = "tenants/b"
	a, b := newStore(t, cfgA), newStore(t, cfgB)
	storetest.Put(t, a, "config", []byte("a"))
	storetest.Put(t, b, "config", []byte("b"))
	storetest.Put(t, b, "packs/x", []byte("bx"))
	head(t, cfg, "tenant-a/config")
	head(t, cfg, "tenants/b/packs/x")

	// A key that is no valid name, put behind the store's back, is skipped.
	bad := "tenant-a/bad//key"
	if _, err := testparts.MotoS3Client(cfg.Endpoint).PutObject(t.Context(), &s3.PutObjectInput{Bucket: &cfg.Bucket, Key: &bad, Body: strings.NewReader("?")}); err != nil {
		t.Fatal(err)
	}
	if got := storetest.Names(t, a, ""); !slices.Equal(got, []string{"config"}) {
		t.Errorf("List of tenant a = %q", got)
	}
	if got := storetest.Names(t, b, ""); !slices.Equal(got, []string{"config", "packs/x"}) {
		t.Errorf("List of tenant b = %q", got)
	}
	if got := storetest.Names(t, root, "tenant"); !slices.Equal(got, []string{"tenant-a/config", "tenants/b/config", "tenants/b/packs/x"}) {
		t.Errorf("List of the whole bucket = %q", got)
	}
	if got := storetest.Get(t, b, "config", 0, -1); string(got) != "b" {
		t.Errorf("tenant b reads %q", got)
	}
}

func TestColdStorageClass(t *testing.T) {
	cfg := motoConfig(t)
	cfg.ColdStorageClass = "GLACIER"
	cfg.PartSize = MinPartSize
	s := newStore(t, cfg)
	ctx := t.Context()
	cold := store.PutOptions{Class: store.ClassCold}

	small, large := storetest.Data(1, 100), storetest.Data(2, MinPartSize+1)
	if err := s.Put(ctx, "packs/cold-small", bytes.NewReader(small), int64(len(small)), cold); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "packs/cold-large", bytes.NewReader(large), int64(len(large)), cold); err != nil {
		t.Fatal(err)
	}
	storetest.Put(t, s, "packs/warm", small)

	for name, want := range map[string]types.StorageClass{"packs/cold-small": "GLACIER", "packs/cold-large": "GLACIER", "packs/warm": ""} {
		if got := head(t, cfg, name).StorageClass; got != want {
			t.Errorf("%s has storage class %q, want %q", name, got, want)
		}
	}
	info, err := s.Stat(ctx, "packs/cold-small")
	if err != nil || info.Class != store.ClassCold {
		t.Fatalf("Stat of a cold object = %+v, %v", info, err)
	}
	classes := map[string]store.Class{}
	if err := s.List(ctx, "packs/", func(oi store.ObjectInfo) error { classes[oi.Name] = oi.Class; return nil }); err != nil {
		t.Fatal(err)
	}
	if classes["packs/cold-small"] != store.ClassCold || classes["packs/cold-large"] != store.ClassCold || classes["packs/warm"] != store.ClassWarm {
		t.Fatalf("List reports classes %v", classes)
	}

	// An archived object cannot be read until it is restored.
	_, err = s.Get(ctx, "packs/cold-small", 0, -1)
	if err == nil || store.IsTransient(err) || !strings.Contains(err.Error(), "restored") {
		t.Fatalf("Get of an archived object: got %v, want a permanent error about restoring", err)
	}

	// SetClass moves a warm object to the cold class, through WithRetry too.
	rs := store.WithRetry(s, store.RetryPolicy{})
	if err := store.SetClass(ctx, rs, "packs/warm", store.ClassCold); err != nil {
		t.Fatalf("SetClass warm -> cold: %v", err)
	}
	if got := head(t, cfg, "packs/warm").StorageClass; got != "GLACIER" {
		t.Fatalf("after SetClass the class is %q, want GLACIER", got)
	}
	if err := store.SetClass(ctx, rs, "packs/warm", store.ClassCold); err != nil {
		t.Fatalf("SetClass to the current class: %v", err)
	}
	err = store.SetClass(ctx, rs, "packs/missing", store.ClassCold)
	storetest.WantNotFound(t, "SetClass of a missing object", err)

	// Leaving an archive class needs a restore first.
	err = store.SetClass(ctx, rs, "packs/cold-small", store.ClassWarm)
	if err == nil || store.IsTransient(err) || !strings.Contains(err.Error(), "restored") {
		t.Fatalf("SetClass of an archived object to warm: got %v, want a permanent error about restoring", err)
	}
}

func TestSetClassToWarm(t *testing.T) {
	cfg := motoConfig(t)
	cfg.ColdStorageClass = "STANDARD_IA"
	s := newStore(t, cfg)
	storetest.Put(t, s, "packs/p", []byte("data"))
	if err := s.SetClass(t.Context(), "packs/p", store.ClassCold); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Stat(t.Context(), "packs/p"); err != nil || info.Class != store.ClassCold {
		t.Fatalf("Stat after SetClass cold = %+v, %v", info, err)
	}
	if err := s.SetClass(t.Context(), "packs/p", store.ClassWarm); err != nil {
		t.Fatal(err)
	}
	if got := head(t, cfg, "packs/p").StorageClass; got != "" && got != types.StorageClassStandard {
		t.Fatalf("after SetClass warm the class is %q", got)
	}
	if got := storetest.Get(t, s, "packs/p", 0, -1); string(got) != "data" {
		t.Fatalf("SetClass changed the data to %q", got)
	}
}

func TestColdClassNotConfigured(t *testing.T) {
	s := newStore(t, motoConfig(t))
	err := s.Put(t.Context(), "packs/p", bytes.NewReader([]byte("x")), 1, store.PutOptions{Class: store.ClassCold})
	if err == nil || store.IsTransient(err) || !strings.Contains(err.Error(), "no cold storage class") {
		t.Fatalf("cold Put without a cold class: got %v", err)
	}
	storetest.Put(t, s, "packs/p", []byte("x"))
	if err := s.SetClass(t.Context(), "packs/p", store.ClassCold); err == nil || store.IsTransient(err) {
		t.Fatalf("SetClass cold without a cold class: got %v", err)
	}
}

func wantProbeFailure(t *testing.T, err error, step string, transient bool, words ...string) {
	t.Helper()
	var pe *store.ProbeError
	if !errors.As(err, &pe) || pe.Step != step {
		t.Fatalf("Probe: got %v, want a failure to %s", err, step)
	}
	if store.IsTransient(err) != transient {
		t.Fatalf("Probe error %v: transient = %v, want %v", err, !transient, transient)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("Probe error %q does not mention %q", err, w)
		}
	}
}

func TestProbeMissingBucket(t *testing.T) {
	cfg := motoConfig(t)
	cfg.Bucket = "haven-no-such-bucket"
	err := store.Probe(t.Context(), newStore(t, cfg))
	wantProbeFailure(t, err, store.ProbeWrite, false, "haven-no-such-bucket", "bucket does not exist")
}

func TestProbeCredentials(t *testing.T) {
	m := testparts.MotoWithAuth(t)
	cfgFor := func(c testparts.Credentials) Config {
		return Config{
			Bucket: m.Bucket, Endpoint: m.Endpoint, ForcePathStyle: true,
			AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey,
		}
	}
	if err := store.Probe(t.Context(), newStore(t, cfgFor(m.Allowed))); err != nil {
		t.Fatalf("Probe with allowed credentials: %v", err)
	}
	wrongSecret := testparts.Credentials{AccessKeyID: m.Allowed.AccessKeyID, SecretAccessKey: "not-the-secret-" + m.Allowed.SecretAccessKey}
	for _, tc := range []struct {
		name  string
		creds testparts.Credentials
		words []string
	}{
		{"denied", m.Denied, []string{"access denied"}},
		{"unknown key", testparts.Credentials{AccessKeyID: "AKIAHAVENUNKNOWN0000", SecretAccessKey: "unknown-secret-value"}, []string{"access key ID is not known"}},
		{"wrong secret", wrongSecret, []string{"secret access key does not match"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := store.Probe(t.Context(), newStore(t, cfgFor(tc.creds)))
			wantProbeFailure(t, err, store.ProbeWrite, false, tc.words...)
			if strings.Contains(err.Error(), tc.creds.SecretAccessKey) {
				t.Fatalf("the error reveals the secret key: %v", err)
			}
		})
	}
}

func TestProbeUnreachable(t *testing.T) {
	// Port 1 on loopback refuses connections: the service is down or not
	// there yet, which is worth retrying.
	s := newStore(t, Config{Bucket: "b", Endpoint: "http://127.0.0.1:1", ForcePathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"})
	wantProbeFailure(t, store.Probe(t.Context(), s), store.ProbeWrite, true, "connection refused")
}

func TestNewValidates(t *testing.T) {
	good := Config{Bucket: "b", Endpoint: "http://127.0.0.1:9000", AccessKeyID: "AKIA", SecretAccessKey: "very-secret"}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"no bucket", func(c *Config) { c.Bucket = "" }},
		{"key without secret", func(c *Config) { c.SecretAccessKey = "" }},
		{"secret without key", func(c *Config) { c.AccessKeyID = "" }},
		{"endpoint without scheme", func(c *Config) { c.Endpoint = "minio:9000" }},
		{"endpoint not a URL", func(c *Config) { c.Endpoint = "http://[::1" }},
		{"bad prefix", func(c *Config) { c.Prefix = "a/../b" }},
		{"tiny parts", func(c *Config) { c.PartSize = 1 << 20 }},
	} {
		cfg := good
		tc.mod(&cfg)
		_, err := New(t.Context(), cfg)
		if err == nil || store.IsTransient(err) {
			t.Errorf("%s: New returned %v, want a permanent error", tc.name, err)
		} else if strings.Contains(err.Error(), "very-secret") {
			t.Errorf("%s: the error reveals the secret: %v", tc.name, err)
		}
	}
	if _, err := New(t.Context(), good); err != nil {
		t.Fatalf("New(good): %v", err)
	}
	for _, s := range []string{good.String(), good.GoString()} {
		if strings.Contains(s, "very-secret") || !strings.Contains(s, "REDACTED") {
			t.Errorf("Config prints as %s", s)
		}
	}
}
