package nfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	nfsc "github.com/willscott/go-nfs-client/nfs"

	"github.com/havenbackup/terraform-provider-haven/engine/nas"
)

// Stability of a WRITE (stable_how).
const (
	unstable = 0
	fileSync = 2
)

// file is an open regular file: its handle. NFSv3 has no open state, so
// nothing is held on the server until Close commits the writes.
type file struct {
	s    *share
	fh   []byte
	path string
	// ctx is the context the file was opened with: ReadAt and WriteAt
	// take none.
	ctx context.Context

	mu         sync.Mutex
	verf       *[8]byte // the write verifier of the first WRITE
	needCommit bool
	closed     bool
}

func (s *share) Open(ctx context.Context, p string) (f nas.File, err error) {
	err = s.fresh(func() error { f, err = s.openExisting(ctx, p); return err })
	return f, err
}

func (s *share) Create(ctx context.Context, p string) (f nas.File, err error) {
	err = s.fresh(func() error { f, err = s.create(ctx, p); return err })
	return f, err
}

func (s *share) openExisting(ctx context.Context, p string) (nas.File, error) {
	p, err := clean(p)
	if err != nil {
		return nil, err
	}
	fh, a, err := s.resolve(ctx, p)
	if err != nil {
		return nil, err
	}
	if a.Type != nfsc.NF3Reg {
		return nil, fmt.Errorf("nfs: %q is a %s, not a regular file", "/"+p, typeName(a.Type))
	}
	return &file{s: s, fh: fh, path: p, ctx: context.WithoutCancel(ctx)}, nil
}

func (s *share) create(ctx context.Context, p string) (nas.File, error) {
	p, err := clean(p)
	if err != nil {
		return nil, err
	}
	dfh, name, err := s.parent(ctx, p)
	if err != nil {
		return nil, err
	}
	zero := uint64(0)
	d, err := s.call(ctx, nfsc.NFSProc3Create, "create", p, func(e *enc) {
		e.opaque(dfh)
		e.str(name)
		e.u32(0) // UNCHECKED: an existing file is truncated (size 0)
		// Private until the restore gives it its own mode.
		e.sattr(sattr{mode: u32(0o600), size: &zero})
	})
	if err != nil {
		return nil, err
	}
	fh := newEntry(d)
	if d.err != nil {
		return nil, fmt.Errorf("nfs create %q: %w", "/"+p, d.err)
	}
	if fh == nil {
		if fh, _, err = s.resolve(ctx, p); err != nil {
			return nil, err
		}
	}
	return &file{s: s, fh: fh, path: p, ctx: context.WithoutCancel(ctx)}, nil
}

func (f *file) check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return os.ErrClosed
	}
	return nil
}

// blocks runs do on each block of n bytes (the last one shorter), as
// many at a time as the share has connections, and returns how many
// bytes the leading blocks that came back whole, plus the first short
// one, hold; and the first error.
func (f *file) blocks(total int, size int, do func(off, n int) (int, error)) (int, error) {
	if total == 0 {
		return 0, nil
	}
	count := (total + size - 1) / size
	got := make([]int, count)
	errs := make([]error, count)
	sem := make(chan struct{}, len(f.s.conns))
	var wg sync.WaitGroup
	for i := range count {
		off := i * size
		n := min(size, total-off)
		if count == 1 {
			got[i], errs[i] = do(off, n)
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got[i], errs[i] = do(off, n)
		}()
	}
	wg.Wait()
	sum := 0
	for i := range count {
		sum += got[i]
		if errs[i] != nil {
			return sum, errs[i]
		}
		if got[i] < min(size, total-i*size) {
			return sum, io.EOF
		}
	}
	return sum, nil
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errors.New("nfs: negative offset")
	}
	n, err := f.blocks(len(p), int(f.s.rsize), func(o, n int) (int, error) {
		// A server may send less than asked without being at the end.
		got := 0
		for got < n {
			c, eof, err := f.read(p[o+got:o+n], off+int64(o+got))
			got += c
			if err != nil {
				return got, err
			}
			if eof || c == 0 {
				break
			}
		}
		return got, nil
	})
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// read is one READ into p.
func (f *file) read(p []byte, off int64) (int, bool, error) {
	d, err := f.s.call(f.ctx, nfsc.NFSProc3Read, "read", f.path, func(e *enc) {
		e.opaque(f.fh)
		e.u64(uint64(off))
		e.u32(uint32(len(p)))
	})
	if err != nil {
		return 0, false, err
	}
	var attr nfsc.PostOpAttr
	d.read(&attr)
	d.u32() // count, the data's length again
	eof := d.bool()
	n := d.opaqueInto(p)
	if d.err != nil {
		return 0, false, fmt.Errorf("nfs read %q: %w", "/"+f.path, d.err)
	}
	return n, eof, nil
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errors.New("nfs: negative offset")
	}
	n, err := f.blocks(len(p), int(f.s.wsize), func(o, n int) (int, error) {
		done := 0
		for done < n {
			c, err := f.write(p[o+done:o+n], off+int64(o+done))
			done += c
			if err != nil {
				return done, err
			}
		}
		return done, nil
	})
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// write is one UNSTABLE WRITE of p.
func (f *file) write(p []byte, off int64) (int, error) {
	d, err := f.s.call(f.ctx, nfsc.NFSProc3Write, "write", f.path, func(e *enc) {
		e.opaque(f.fh)
		e.u64(uint64(off))
		e.u32(uint32(len(p)))
		e.u32(unstable)
		e.opaque(p)
	})
	if err != nil {
		return 0, err
	}
	skipWcc(d)
	count := d.u32()
	committed := d.u32()
	var verf [8]byte
	d.read(&verf)
	if d.err != nil {
		return 0, fmt.Errorf("nfs write %q: %w", "/"+f.path, d.err)
	}
	if count == 0 || int(count) > len(p) {
		return 0, fmt.Errorf("nfs write %q: the server wrote %d of %d bytes", "/"+f.path, count, len(p))
	}
	if err := f.sameVerifier(verf); err != nil {
		return 0, err
	}
	if committed < fileSync {
		f.mu.Lock()
		f.needCommit = true
		f.mu.Unlock()
	}
	return int(count), nil
}

// sameVerifier checks a write verifier against the file's first: a server
// that restarted may have dropped uncommitted writes, so the file has to
// be written again.
func (f *file) sameVerifier(v [8]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.verf == nil {
		f.verf = &v
		return nil
	}
	if *f.verf != v {
		return lost("nfs: the server restarted while %q was written (its write verifier changed), so writes not yet committed may be lost", "/"+f.path)
	}
	return nil
}

// skipWcc passes over a wcc_data.
func skipWcc(d *dec) {
	if d.bool() {
		d.skip(8 + 8 + 8) // size, mtime, ctime
	}
	var attr nfsc.PostOpAttr
	d.read(&attr)
}

// Close commits the file's unstable writes.
func (f *file) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	commit := f.needCommit
	f.mu.Unlock()
	if !commit {
		return nil
	}
	d, err := f.s.call(f.ctx, nfsc.NFSProc3Commit, "commit", f.path, func(e *enc) {
		e.opaque(f.fh)
		e.u64(0)
		e.u32(0) // to the end of the file
	})
	if err != nil {
		return err
	}
	skipWcc(d)
	var verf [8]byte
	d.read(&verf)
	if d.err != nil {
		return fmt.Errorf("nfs commit %q: %w", "/"+f.path, d.err)
	}
	return f.sameVerifier(verf)
}
