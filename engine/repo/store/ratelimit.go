package store

import (
	"context"
	"io"

	"golang.org/x/time/rate"
)

// maxTake is the most one read of a limited upload takes from its limiter
// at once, and so the least burst a limiter has (rate.Limiter refuses to
// wait for more than its burst).
const maxTake = 64 << 10

// NewLimiter returns an upload limiter of bytesPerSec, to be shared by
// every store whose uploads must fit in one budget together.
func NewLimiter(bytesPerSec int64) *rate.Limiter {
	l := rate.NewLimiter(rate.Inf, maxTake)
	SetRate(l, bytesPerSec)
	return l
}

// SetRate changes a limiter's rate; uploads in flight follow at once. A
// rate of 0 or less lifts the limit. The burst is a quarter second of
// data, so a cap holds over any stretch longer than that.
func SetRate(l *rate.Limiter, bytesPerSec int64) {
	if bytesPerSec <= 0 {
		l.SetLimit(rate.Inf)
		return
	}
	if l.Limit() != rate.Limit(bytesPerSec) {
		l.SetBurst(int(max(bytesPerSec/4, maxTake)))
		l.SetLimit(rate.Limit(bytesPerSec))
	}
}

// WithRateLimit caps the bytes per second a store uploads (Put bodies)
// with l. Every Put through every store wrapped with the same limiter draws
// on one budget, however many run at once. Reads are not limited: the cap
// protects the uplink during scheduled backups.
func WithRateLimit(s Store, l *rate.Limiter) Store {
	return &rateLimited{Store: s, limiter: l}
}

type rateLimited struct {
	Store
	limiter *rate.Limiter
}

func (r *rateLimited) Put(ctx context.Context, name string, body io.Reader, size int64, opts PutOptions) error {
	return r.Store.Put(ctx, name, &limitedReader{ctx: ctx, r: body, l: r.limiter}, size, opts)
}

// SetClass passes through when the wrapped store supports classes.
func (r *rateLimited) SetClass(ctx context.Context, name string, class Class) error {
	return SetClass(ctx, r.Store, name, class)
}

type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if len(p) > maxTake {
		p = p[:maxTake]
	}
	n, err := l.r.Read(p)
	if n > 0 {
		if werr := l.l.WaitN(l.ctx, n); werr != nil {
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
