package store

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how WithRetry retries. Zero fields take the values of
// DefaultRetryPolicy.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts per operation, the first included.
	MaxAttempts int
	// InitialDelay is the base delay before the first retry; it doubles for each
	// further retry.
	InitialDelay time.Duration
	// MaxDelay caps the base delay.
	MaxDelay time.Duration
	// Notify, if set, is called before each retry with the operation ("put",
	// "get", "read", "stat", "list", "delete", "setclass"), the object name (the
	// prefix for "list"), the number of the attempt that failed, its error, and
	// the delay before the next attempt. It is meant for logs and metrics.
	Notify func(op, name string, attempt int, err error, delay time.Duration)
}

// DefaultRetryPolicy returns the policy used for zero RetryPolicy fields: six
// attempts over about eight seconds, which rides out throttling and a dropped
// connection without holding up a job for long when a backend is really down.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:  6,
		InitialDelay: 250 * time.Millisecond,
		MaxDelay:     30 * time.Second,
	}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialDelay <= 0 {
		p.InitialDelay = d.InitialDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = d.MaxDelay
	}
	return p
}

// delay returns the wait after the given failed attempt (1-based): exponential
// growth capped at MaxDelay, with the upper half randomised so that many workers
// hitting the same throttled backend do not retry in lockstep, while still
// waiting at least half the base delay.
func (p RetryPolicy) delay(attempt int) time.Duration {
	d := p.InitialDelay
	for i := 1; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	return half + rand.N(d-half+1)
}

// WithRetry returns a Store that repeats operations of s that fail with a
// transient error, waiting with exponential backoff and jitter between attempts.
// Permanent errors are returned at once, and so is the last error when the
// attempts run out (it is then still marked transient: a later, separate try may
// succeed). Waiting stops when ctx is done.
//
//   - Put is repeated only if its reader is an io.ReadSeeker (a *bytes.Reader,
//     an *os.File, ...): it is rewound to its position at the time of the call
//     before each new attempt. Any other reader cannot be read twice, so its Put
//     gets a single attempt; callers that want retries must pass a seeker or
//     buffer the data first.
//   - Get is retried, and so are transient errors while reading its body: the
//     reader re-requests the rest of the range from where it stopped.
//   - List is retried from the start, but fn is not called again for objects
//     it has already seen (List's order is ascending), and an error from fn is
//     returned at once, never retried.
//
// The returned Store implements ClassChanger if and only if s does.
func WithRetry(s Store, p RetryPolicy) Store {
	r := &retryStore{s: s, p: p.withDefaults()}
	if cc, ok := s.(ClassChanger); ok {
		return &retryClassStore{retryStore: r, cc: cc}
	}
	return r
}

type retryStore struct {
	s Store
	p RetryPolicy
}

type retryClassStore struct {
	*retryStore
	cc ClassChanger
}

func (r *retryClassStore) SetClass(ctx context.Context, name string, class Class) error {
	return r.do(ctx, "setclass", name, func() error { return r.cc.SetClass(ctx, name, class) })
}

// final wraps an error that must be returned without retrying, whatever its class.
type final struct{ err error }

func (f final) Error() string { return f.err.Error() }

// do runs f until it succeeds, fails permanently, runs out of attempts, or ctx is
// done.
func (r *retryStore) do(ctx context.Context, op, name string, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if fe, ok := err.(final); ok {
			return fe.err
		}
		if err == nil || !IsTransient(err) || attempt >= r.p.MaxAttempts {
			return err
		}
		if err := r.wait(ctx, op, name, attempt, err); err != nil {
			return err
		}
	}
}

// wait sleeps before the retry that follows a failed attempt, or returns an
// error carrying both the failure and the reason for giving up if ctx ends first.
func (r *retryStore) wait(ctx context.Context, op, name string, attempt int, failure error) error {
	d := r.p.delay(attempt)
	if r.p.Notify != nil {
		r.p.Notify(op, name, attempt, failure, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w (stopped retrying: %w)", failure, context.Cause(ctx))
	}
}

func (r *retryStore) Put(ctx context.Context, name string, rd io.Reader, size int64, opts PutOptions) error {
	seeker, ok := rd.(io.Seeker)
	if !ok {
		return r.s.Put(ctx, name, rd, size, opts)
	}
	start, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		// A seeker that cannot tell its position (a pipe behind an *os.File)
		// cannot be rewound either.
		return r.s.Put(ctx, name, rd, size, opts)
	}
	first := true
	return r.do(ctx, "put", name, func() error {
		if !first {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return final{Permanent(fmt.Errorf("store: put %q: rewinding the data for a retry: %w", name, err))}
			}
		}
		first = false
		return r.s.Put(ctx, name, rd, size, opts)
	})
}

func (r *retryStore) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "get", name, func() error {
		var err error
		rc, err = r.s.Get(ctx, name, offset, length)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &resumingReader{r: r, ctx: ctx, name: name, pos: offset, end: rangeEnd(offset, length), rc: rc}, nil
}

// rangeEnd returns the offset after the last byte of a range, or -1 for "to the
// end of the object".
func rangeEnd(offset, length int64) int64 {
	if length < 0 {
		return -1
	}
	return offset + length
}

// resumingReader reads a Get body and, when a read fails transiently, asks the
// store again for the rest of the range instead of failing the whole download
// (packs are tens of MiB; losing a connection near the end should not cost a
// full re-read).
type resumingReader struct {
	r    *retryStore
	ctx  context.Context
	name string
	pos  int64 // offset of the next byte to read
	end  int64 // see rangeEnd
	rc   io.ReadCloser
	// failures counts failed reads and re-requests since data last arrived, so
	// that a stream which keeps breaking without progress still gives up.
	failures int
}

func (rr *resumingReader) Read(p []byte) (int, error) {
	for {
		if rr.rc == nil {
			if err := rr.reopen(); err != nil {
				return 0, err
			}
		}
		n, err := rr.rc.Read(p)
		rr.pos += int64(n)
		if n > 0 {
			rr.failures = 0
		}
		if err == nil || err == io.EOF || !IsTransient(err) {
			return n, err
		}
		_ = rr.rc.Close()
		rr.rc = nil
		if n > 0 {
			// Hand over what arrived; the next Read re-requests the rest.
			return n, nil
		}
		if err := rr.fail(err); err != nil {
			return 0, err
		}
	}
}

// reopen requests the rest of the range, retrying transient failures.
func (rr *resumingReader) reopen() error {
	length := int64(-1)
	if rr.end >= 0 {
		length = rr.end - rr.pos
	}
	for {
		rc, err := rr.r.s.Get(rr.ctx, rr.name, rr.pos, length)
		if err == nil {
			rr.rc = rc
			return nil
		}
		if !IsTransient(err) {
			return err
		}
		if err := rr.fail(err); err != nil {
			return err
		}
	}
}

// fail records a transient failure and waits before the next try, or returns
// the error to give up with.
func (rr *resumingReader) fail(err error) error {
	rr.failures++
	if rr.failures >= rr.r.p.MaxAttempts {
		return err
	}
	return rr.r.wait(rr.ctx, "read", rr.name, rr.failures, err)
}

func (rr *resumingReader) Close() error {
	if rr.rc == nil {
		return nil
	}
	err := rr.rc.Close()
	rr.rc = nil
	return err
}

func (r *retryStore) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	var info ObjectInfo
	err := r.do(ctx, "stat", name, func() error {
		var err error
		info, err = r.s.Stat(ctx, name)
		return err
	})
	return info, err
}

func (r *retryStore) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	var last string
	seen := false
	return r.do(ctx, "list", prefix, func() error {
		var fnErr error
		err := r.s.List(ctx, prefix, func(oi ObjectInfo) error {
			if seen && oi.Name <= last {
				return nil
			}
			if err := fn(oi); err != nil {
				fnErr = err
				return err
			}
			last, seen = oi.Name, true
			return nil
		})
		if fnErr != nil {
			return final{fnErr}
		}
		return err
	})
}

func (r *retryStore) Delete(ctx context.Context, name string) error {
	return r.do(ctx, "delete", name, func() error { return r.s.Delete(ctx, name) })
}
