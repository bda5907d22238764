package nfs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/willscott/go-nfs-client/nfs/xdr"

	"github.com/havenbackup/terraform-provider-haven/engine/nas"
)

// ONC RPC (RFC 5531) over TCP with record marking. The library's
// rpc.Client reconnects behind its callers' backs and retries calls on the
// new connection (up to 100 times, five seconds each), has no contexts,
// and can block its receiver on a reply nobody waits for; a Share has to
// see a dropped connection as one, so this transport is Haven's own: one
// TCP connection, calls multiplexed by xid, every waiter failed with
// nas.ErrConnectionLost when the connection ends.

const (
	msgCall  = 0
	msgReply = 1

	// maxRecord bounds a reply's size: a READ of 1 MiB plus headers fits
	// with room to spare.
	maxRecord = 64 << 20
)

var xidSeq atomic.Uint32

func init() { xidSeq.Store(rand.Uint32()) }

// rpcConn is one connection to an RPC server.
type rpcConn struct {
	conn    net.Conn
	cred    []byte // the encoded opaque_auth of calls
	timeout time.Duration
	onFail  func(error)

	wmu sync.Mutex // one record at a time on the wire

	mu      sync.Mutex
	pending map[uint32]chan []byte
	failed  error
	done    chan struct{}
}

// dialRPC connects to addr. reserved binds the local end to a port below
// 1024 (servers that insist on "secure" ports want it; it needs root or
// CAP_NET_BIND_SERVICE).
func dialRPC(ctx context.Context, addr string, reserved bool, cred []byte, timeout time.Duration) (*rpcConn, error) {
	var conn net.Conn
	var err error
	if reserved {
		conn, err = dialReserved(ctx, addr)
	} else {
		d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", nas.ErrConnectionLost, err)
	}
	c := &rpcConn{
		conn:    conn,
		cred:    cred,
		timeout: timeout,
		pending: map[uint32]chan []byte{},
		done:    make(chan struct{}),
	}
	go c.receive()
	return c, nil
}

func dialReserved(ctx context.Context, addr string) (net.Conn, error) {
	var last error
	for port := 1023; port >= 600; port-- {
		d := net.Dialer{LocalAddr: &net.TCPAddr{Port: port}, KeepAlive: 30 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		last = err
		switch {
		case errors.Is(err, syscall.EADDRINUSE), errors.Is(err, syscall.EADDRNOTAVAIL):
			continue
		case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
			return nil, fmt.Errorf("binding a reserved source port (below 1024) needs root or CAP_NET_BIND_SERVICE: %w", err)
		default:
			return nil, err
		}
	}
	return nil, fmt.Errorf("no free reserved source port: %w", last)
}

// fail ends the connection: every waiting and later call gets err.
func (c *rpcConn) fail(err error) {
	c.mu.Lock()
	if c.failed != nil {
		c.mu.Unlock()
		return
	}
	c.failed = err
	close(c.done)
	c.mu.Unlock()
	_ = c.conn.Close()
	if c.onFail != nil {
		c.onFail(err)
	}
}

func (c *rpcConn) close() { c.fail(errClosed) }

var errClosed = errors.New("nfs: the share is closed")

func (c *rpcConn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

func lost(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{nas.ErrConnectionLost}, args...)...)
}

func (c *rpcConn) receive() {
	r := bufio.NewReaderSize(c.conn, 64<<10)
	for {
		rec, err := readRecord(r)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				c.fail(lost("the server closed the connection"))
			} else {
				c.fail(lost("%v", err))
			}
			return
		}
		if len(rec) < 4 {
			c.fail(lost("a reply of %d bytes", len(rec)))
			return
		}
		xid := binary.BigEndian.Uint32(rec)
		c.mu.Lock()
		ch, ok := c.pending[xid]
		delete(c.pending, xid)
		c.mu.Unlock()
		if ok {
			ch <- rec // buffered: never blocks
		}
		// A reply to a call whose caller gave up is dropped.
	}
}

// readRecord reads one record (all its fragments).
func readRecord(r io.Reader) ([]byte, error) {
	var rec []byte
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, err
		}
		h := binary.BigEndian.Uint32(hdr[:])
		n := int(h & 0x7fffffff)
		if len(rec)+n > maxRecord {
			return nil, fmt.Errorf("a reply of more than %d bytes", maxRecord)
		}
		start := len(rec)
		rec = append(rec, make([]byte, n)...)
		if _, err := io.ReadFull(r, rec[start:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if h&0x80000000 != 0 {
			return rec, nil
		}
	}
}

// call sends one call and waits for its reply, which it returns past the
// accepted-reply header (at the procedure's results). args appends the
// procedure's arguments.
func (c *rpcConn) call(ctx context.Context, prog, vers, proc uint32, args func(*enc)) (*dec, error) {
	xid := xidSeq.Add(1)
	e := &enc{b: make([]byte, 4, 256)}
	e.u32(xid)
	e.u32(msgCall)
	e.u32(2) // RPC version
	e.u32(prog)
	e.u32(vers)
	e.u32(proc)
	e.b = append(e.b, c.cred...)
	e.u32(0) // verifier: AUTH_NONE
	e.u32(0)
	if args != nil {
		args(e)
	}
	binary.BigEndian.PutUint32(e.b, uint32(len(e.b)-4)|0x80000000)

	ch := make(chan []byte, 1)
	c.mu.Lock()
	if c.failed != nil {
		c.mu.Unlock()
		return nil, c.failed
	}
	c.pending[xid] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, xid)
		c.mu.Unlock()
	}

	c.wmu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.conn.Write(e.b)
	c.wmu.Unlock()
	if err != nil {
		forget()
		c.fail(lost("sending a call: %v", err))
		return nil, c.err()
	}

	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	var rec []byte
	select {
	case rec = <-ch:
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	case <-c.done:
		forget()
		return nil, c.err()
	case <-timer.C:
		forget()
		c.fail(lost("no reply in %s", c.timeout))
		return nil, c.err()
	}
	return parseReply(rec[4:])
}

// parseReply checks a reply's header (RFC 5531 section 9).
func parseReply(b []byte) (*dec, error) {
	d := newDec(b)
	if t := d.u32(); d.err == nil && t != msgReply {
		return nil, fmt.Errorf("rpc: message type %d where a reply was expected", t)
	}
	switch stat := d.u32(); {
	case d.err != nil:
		return nil, fmt.Errorf("rpc: short reply: %w", d.err)
	case stat == 0: // MSG_ACCEPTED
		d.u32() // verifier flavor
		d.opaque()
		acc := d.u32()
		if d.err != nil {
			return nil, fmt.Errorf("rpc: short reply: %w", d.err)
		}
		switch acc {
		case 0:
			return d, nil
		case 1:
			return nil, errors.New("rpc: PROG_UNAVAIL: the server does not serve this program")
		case 2:
			lo, hi := d.u32(), d.u32()
			return nil, fmt.Errorf("rpc: PROG_MISMATCH: the server serves versions %d to %d", lo, hi)
		case 3:
			return nil, errors.New("rpc: PROC_UNAVAIL: the server does not know this procedure")
		case 4:
			return nil, errors.New("rpc: GARBAGE_ARGS: the server could not decode the arguments")
		case 5:
			return nil, errors.New("rpc: SYSTEM_ERR on the server")
		default:
			return nil, fmt.Errorf("rpc: accept status %d", acc)
		}
	case stat == 1: // MSG_DENIED
		switch rs := d.u32(); rs {
		case 0:
			lo, hi := d.u32(), d.u32()
			return nil, fmt.Errorf("rpc: RPC_MISMATCH: the server speaks RPC versions %d to %d", lo, hi)
		case 1:
			return nil, fmt.Errorf("rpc: the server refused the credentials (%s): %w", authStat(d.u32()), fs.ErrPermission)
		default:
			return nil, fmt.Errorf("rpc: call denied (reject status %d)", rs)
		}
	default:
		return nil, fmt.Errorf("rpc: reply status %d", stat)
	}
}

func authStat(s uint32) string {
	names := []string{"AUTH_OK", "AUTH_BADCRED", "AUTH_REJECTEDCRED", "AUTH_BADVERF", "AUTH_REJECTEDVERF", "AUTH_TOOWEAK: the export wants stronger security than AUTH_SYS", "AUTH_INVALIDRESP", "AUTH_FAILED"}
	if int(s) < len(names) {
		return names[s]
	}
	return fmt.Sprintf("auth status %d", s)
}

// authUnix encodes AUTH_SYS credentials (RFC 5531 appendix A) as an
// opaque_auth: the library's rpc.AuthUnix always adds group 0 to the
// supplementary groups, which would hand the proxy root's group.
func authUnix(machine string, uid, gid uint32) []byte {
	body := &enc{}
	body.u32(uint32(time.Now().Unix()))
	if len(machine) > 255 {
		machine = machine[:255]
	}
	body.str(machine)
	body.u32(uid)
	body.u32(gid)
	body.u32(1)
	body.u32(gid)
	e := &enc{}
	e.u32(1) // AUTH_SYS
	e.opaque(body.b)
	return e.b
}

// enc appends XDR (RFC 4506).
type enc struct{ b []byte }

func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) bool(v bool) {
	if v {
		e.u32(1)
	} else {
		e.u32(0)
	}
}
func (e *enc) opaque(p []byte) {
	e.u32(uint32(len(p)))
	e.b = append(e.b, p...)
	if pad := (4 - len(p)%4) % 4; pad > 0 {
		e.b = append(e.b, make([]byte, pad)...)
	}
}
func (e *enc) str(s string) { e.opaque([]byte(s)) }

// dec reads XDR; the first error sticks. Structures of the protocol are
// read with the library's decoder (dec.read).
type dec struct {
	r   *bytes.Reader
	err error
}

func newDec(b []byte) *dec { return &dec{r: bytes.NewReader(b)} }

func (d *dec) u32() uint32 {
	var b [4]byte
	if d.err == nil {
		_, d.err = io.ReadFull(d.r, b[:])
	}
	if d.err != nil {
		return 0
	}
	return binary.BigEndian.Uint32(b[:])
}

func (d *dec) u64() uint64 { return uint64(d.u32())<<32 | uint64(d.u32()) }

func (d *dec) bool() bool { return d.u32() != 0 }

// opaque reads variable-length opaque data (a handle, a name).
func (d *dec) opaque() []byte {
	n := d.u32()
	if d.err != nil {
		return nil
	}
	if int64(n) > int64(d.r.Len()) {
		d.err = io.ErrUnexpectedEOF
		return nil
	}
	b := make([]byte, n)
	_, d.err = io.ReadFull(d.r, b)
	d.skip((4 - int(n)%4) % 4)
	return b
}

// opaqueInto reads variable-length opaque data into p (at most len(p)
// bytes; more is an error) and returns its length.
func (d *dec) opaqueInto(p []byte) int {
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if int(n) > len(p) || int64(n) > int64(d.r.Len()) {
		d.err = fmt.Errorf("%d bytes of data where at most %d were asked for", n, len(p))
		return 0
	}
	_, d.err = io.ReadFull(d.r, p[:n])
	d.skip((4 - int(n)%4) % 4)
	return int(n)
}

func (d *dec) skip(n int) {
	if d.err == nil && n > 0 {
		_, d.err = d.r.Seek(int64(n), io.SeekCurrent)
	}
}

func (d *dec) read(v any) {
	if d.err == nil {
		d.err = xdr.Read(d.r, v)
	}
}
