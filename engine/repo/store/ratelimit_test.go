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
	s := store.WithRateLimit(fs, store.NewLimiter(1<<20))
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

// TestRateLimitIsSharedByStores: two stores wrapped with one limiter
// upload at once and together stay under its rate (3 MiB at 1 MiB/s take
// at least 2.75 s, the bucket starting with a quarter second's burst).
func TestRateLimitIsSharedByStores(t *testing.T) {
	lim := store.NewLimiter(1 << 20)
	data := bytes.Repeat([]byte("shared"), 1<<18) // 1.5 MiB
	start := time.Now()
	errs := make(chan error, 2)
	for range 2 {
		fs, err := fsstore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		s := store.WithRateLimit(fs, lim)
		go func() {
			errs <- s.Put(context.Background(), "shared/object", bytes.NewReader(data), int64(len(data)), store.PutOptions{})
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 2700*time.Millisecond {
		t.Fatalf("2 × 1.5 MiB through one 1 MiB/s limiter took only %v", took)
	}
}
