package store_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/fsstore"
)

// TestRateLimitCapsUploads checks the bandwidth cap scheduled backups use:
// 3 MiB through a 1 MiB/s cap cannot take much less than 2.75 s (the
// bucket starts with a quarter second's burst), and the bytes arrive intact.
func TestRateLimitCapsUploads(t *testing.T) {
	fs, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := store.WithRateLimit(fs, 1<<20)
	data := bytes.Repeat([]byte("rate"), 3<<18)
	start := time.Now()
	if err := s.Put(context.Background(), "limited/object", bytes.NewReader(data), int64(len(data)), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2700*time.Millisecond {
		t.Fatalf("3 MiB at 1 MiB/s took only %v", took)
	}
	rc, err := s.Get(context.Background(), "limited/object", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	got.ReadFrom(rc)
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("the limited upload changed the bytes")
	}
	// Canceling stops a throttled upload.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Put(ctx, "limited/other", bytes.NewReader(data), int64(len(data)), store.PutOptions{}); err == nil {
		t.Fatal("a canceled throttled upload succeeded")
	}
}
