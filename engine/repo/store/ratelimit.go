package store

import (
	"context"
	"io"
	"sync"
	"time"
)

// WithRateLimit caps the bytes per second a store uploads (Put bodies),
// shared by every concurrent Put through the returned store. Reads are not
// limited: the cap protects the uplink during scheduled backups.
func WithRateLimit(s Store, bytesPerSec int64) Store {
	return &rateLimited{Store: s, bucket: &tokenBucket{rate: float64(bytesPerSec), burst: float64(max(bytesPerSec/4, 64<<10))}}
}

type rateLimited struct {
	Store
	bucket *tokenBucket
}

func (r *rateLimited) Put(ctx context.Context, name string, body io.Reader, size int64, opts PutOptions) error {
	return r.Store.Put(ctx, name, &limitedReader{ctx: ctx, r: body, b: r.bucket}, size, opts)
}

// SetClass passes through when the wrapped store supports classes.
func (r *rateLimited) SetClass(ctx context.Context, name string, class Class) error {
	return SetClass(ctx, r.Store, name, class)
}

type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// take waits until n bytes may pass.
func (b *tokenBucket) take(ctx context.Context, n int) error {
	b.mu.Lock()
	now := time.Now()
	if b.last.IsZero() {
		b.last, b.tokens = now, b.burst
	}
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	wait := time.Duration(0)
	if b.tokens < 0 {
		wait = time.Duration(-b.tokens / b.rate * float64(time.Second))
	}
	b.mu.Unlock()
	if wait == 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type limitedReader struct {
	ctx context.Context
	r   io.Reader
	b   *tokenBucket
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if len(p) > 256<<10 {
		p = p[:256<<10]
	}
	n, err := l.r.Read(p)
	if n > 0 {
		if werr := l.b.take(l.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// Seek lets WithRetry rewind a limited body.
func (l *limitedReader) Seek(offset int64, whence int) (int64, error) {
	if s, ok := l.r.(io.Seeker); ok {
		return s.Seek(offset, whence)
	}
	return 0, ErrUnsupported
}
