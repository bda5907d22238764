package testparts

// The NFS server of the NAS tests.
//
// # Decision: go-nfs in process, not nfs-ganesha
//
// The tests serve their NFS shares with github.com/willscott/go-nfs
// (v0.0.4, a maintained NFSv3 server library) over temporary directories,
// in the test process, on a free loopback port. nfs-ganesha 4.3 from Debian
// (nfs-ganesha, nfs-ganesha-vfs, nfs-ganesha-mem) was tried first and
// cannot do the job for both root and ordinary users:
//
//   - It will not run without rpcbind: with none listening it logs "Cannot
//     register NFS V3 on TCP" and exits (status 2), and there is no setting
//     that skips the registration. rpcbind listens on port 111 and
//     /run/rpcbind.sock, so an ordinary user cannot start one; the tests would
//     depend on a system-wide daemon started by root.
//   - It cannot serve MOUNT and NFS on one port: with MNT_Port = NFS_Port the
//     MOUNT calls get PROG_UNAVAIL, so it takes two ports.
//   - FSAL_VFS, the one that serves a real directory, needs
//     CAP_DAC_READ_SEARCH for open_by_handle_at: as user cloudsdk, with
//     rpcbind started by root, the export mounts but every LOOKUP and CREATE
//     fails ("vfs_open_by_handle: Failed with Operation not permitted"). As
//     root, with rpcbind, it serves.
//   - FSAL_MEM runs as an ordinary user and keeps what the tests check (the
//     modes 01777, 04755 and 02755, times to the nanosecond, symlinks; a chown
//     by a non-root client is refused), but it keeps its files in memory: the
//     tests could neither lay out a tree nor look at what a restore wrote
//     except through NFS itself, and a restart (the dropped-connection tests)
//     empties the share.
//
// go-nfs serves MOUNT and NFS on one port without rpcbind, as any user,
// over any directory. What it lacks is added in this harness, never by
// patching the library:
//
//   - Its SETATTR keeps only the permission bits (mode & 0777: no set-id or
//     sticky bits) and applies the mode before the owner (so a chown would
//     clear the set-id bits anyway). The harness answers SETATTR itself
//     (nfsConn below reads each call off the connection before go-nfs sees
//     it): owner, then all 12 mode bits, then size, then atime and mtime to
//     the nanosecond with utimensat, as a Unix NFS server does; a chown the
//     server process may not make is NFS3ERR_PERM.
//   - Its REMOVE and RMDIR are both os.Remove: the harness refuses a REMOVE
//     of a directory (NFS3ERR_ISDIR) and an RMDIR of anything else
//     (NFS3ERR_NOTDIR), as unlink(2) and rmdir(2) do.
//   - It reports os.FileMode bits, where the set-id and sticky bits are
//     Go's own high bits; the harness's filesystem (osFS) reports them as
//     the Unix bits 04000, 02000 and 01000 (the high bits go-nfs adds for
//     the type stay; clients keep mode & 07777). osFS is the harness's own
//     because go-billy's will not do: BoundOS resolves a path's final
//     symlink (a REMOVE of a symlink removed what it pointed to) and
//     ChrootOS rewrites absolute symlink targets.
//   - Its FSSTAT answers 2^62 free bytes; the harness asks statfs(2).
//   - Its MOUNT makes a handle even of a refused export's filesystem (and
//     panics on none), so a refusal carries an empty one.
//
// Left as go-nfs has them: it reports every entry's atime and ctime as its
// mtime (so the tests check atimes on the local files); it answers every
// WRITE FILE_SYNC (so a client's COMMIT is never needed); its CREATE
// truncates an existing file whatever the size asked; and it checks no
// credentials (so permissions are the server process's own).
//
// Handles are kept across Stop and Start (as a real server's survive a
// reboot) and the write verifier changes (as a real server's does).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	billy "github.com/go-git/go-billy/v5"
	gonfs "github.com/willscott/go-nfs"
	"github.com/willscott/go-nfs/helpers"
	"golang.org/x/sys/unix"
)

// NFS is an NFSv3 server on a loopback port serving two exports of
// temporary directories: Export ("/data", the directory Dir) and
// OtherExport ("/other", OtherDir). MOUNT and NFS share the port, and no
// portmapper runs.
type NFS struct {
	// Address is "127.0.0.1:port", the NFS and MOUNT services' address.
	Address     string
	Export      string
	OtherExport string
	// Dir and OtherDir are the exports' directories on this machine.
	Dir, OtherDir string

	t       testing.TB
	exports map[string]*osFS
	handler gonfs.Handler

	mu      sync.Mutex
	ln      net.Listener
	cancel  context.CancelFunc
	served  chan struct{}
	conns   map[*nfsConn]struct{}
	clients []net.Addr
}

var quietNFS sync.Once

// StartNFS starts an NFS server for this test and stops it when the test
// ends. The server runs in the test process (go-nfs, see the decision
// above), so there is nothing to install; a server that cannot listen
// fails the test.
func StartNFS(t testing.TB) *NFS {
	t.Helper()
	quietNFS.Do(func() { gonfs.Log.SetLevel(gonfs.FatalLevel) }) // it logs every refused call
	n := &NFS{
		Export:      "/data",
		OtherExport: "/other",
		Dir:         t.TempDir(),
		OtherDir:    t.TempDir(),
		t:           t,
		conns:       map[*nfsConn]struct{}{},
	}
	n.exports = map[string]*osFS{
		n.Export:      newOSFS(n.Dir),
		n.OtherExport: newOSFS(n.OtherDir),
	}
	// A handle per path, as long as the server lives: evicting one would
	// make it stale under a test.
	n.handler = helpers.NewCachingHandler(&nfsHandler{n: n}, 1<<20)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("nfs: listening on a loopback port: %v", err)
	}
	n.Address = ln.Addr().String()
	n.serve(ln)
	t.Cleanup(n.Stop)
	return n
}

// Stop closes the listener and every connection, as a server that dies
// would: clients see their connections drop. The exports' files stay.
func (n *NFS) Stop() {
	n.mu.Lock()
	ln, cancel, served := n.ln, n.cancel, n.served
	conns := make([]*nfsConn, 0, len(n.conns))
	for c := range n.conns {
		conns = append(conns, c)
	}
	n.ln, n.cancel, n.served = nil, nil, nil
	n.mu.Unlock()
	if ln == nil {
		return
	}
	_ = ln.Close()
	cancel()
	for _, c := range conns {
		_ = c.Close()
	}
	<-served
}

// Start starts a stopped server again on the same port. Call it from the
// test's goroutine: a port it cannot have fails the test.
func (n *NFS) Start() {
	n.t.Helper()
	n.mu.Lock()
	running := n.ln != nil
	n.mu.Unlock()
	if running {
		return
	}
	var ln net.Listener
	var err error
	// The port was ours a moment ago; a socket closing may hold it briefly.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ln, err = net.Listen("tcp", n.Address); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatalf("nfs: listening on %s again: %v", n.Address, err)
	}
	n.serve(ln)
}

// Clients are the remote addresses of the connections the server has
// accepted, in order.
func (n *NFS) Clients() []net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]net.Addr(nil), n.clients...)
}

func (n *NFS) serve(ln net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	n.mu.Lock()
	n.ln, n.cancel, n.served = ln, cancel, served
	n.mu.Unlock()
	// A new server, so a new write verifier (Server.ID), as after a reboot.
	srv := &gonfs.Server{Handler: n.handler, Context: ctx}
	go func() {
		defer close(served)
		_ = srv.Serve(&nfsListener{Listener: ln, n: n})
	}()
}

type nfsListener struct {
	net.Listener
	n *NFS
}

func (l *nfsListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := newNFSConn(conn, l.n)
	l.n.mu.Lock()
	l.n.conns[c] = struct{}{}
	l.n.clients = append(l.n.clients, conn.RemoteAddr())
	l.n.mu.Unlock()
	return c, nil
}

// nfsHandler is the go-nfs handler under the caching one (which makes
// and resolves the handles): it mounts the two exports.
type nfsHandler struct{ n *NFS }

func (h *nfsHandler) Mount(_ context.Context, _ net.Conn, req gonfs.MountRequest) (gonfs.MountStatus, billy.Filesystem, []gonfs.AuthFlavor) {
	fsys, ok := h.n.exports[string(req.Dirpath)]
	if !ok {
		// go-nfs makes a handle of the filesystem even for a refusal.
		return gonfs.MountStatusErrNoEnt, newOSFS(filepath.Join(h.n.Dir, "nonexistent")), nil
	}
	return gonfs.MountStatusOk, fsys, []gonfs.AuthFlavor{gonfs.AuthFlavorNull, 1 /* AUTH_SYS */}
}

func (h *nfsHandler) Change(fsys billy.Filesystem) billy.Change {
	c, _ := fsys.(billy.Change)
	return c
}

func (h *nfsHandler) FSStat(_ context.Context, fsys billy.Filesystem, s *gonfs.FSStat) error {
	o, ok := fsys.(*osFS)
	if !ok {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(o.root, &st); err != nil {
		return err
	}
	bs := uint64(st.Bsize)
	s.TotalSize, s.FreeSize, s.AvailableSize = st.Blocks*bs, st.Bfree*bs, st.Bavail*bs
	s.TotalFiles, s.FreeFiles, s.AvailableFiles = st.Files, st.Ffree, st.Ffree
	return nil
}

// The caching handler replaces these.
func (h *nfsHandler) ToHandle(billy.Filesystem, []string) []byte { return nil }
func (h *nfsHandler) FromHandle([]byte) (billy.Filesystem, []string, error) {
	return nil, nil, errors.New("no handles")
}
func (h *nfsHandler) InvalidateHandle(billy.Filesystem, []byte) error { return nil }
func (h *nfsHandler) HandleLimit() int                                { return 1 << 20 }

// osFS is a directory as go-nfs sees it. go-billy's own OS filesystems
// will not do: BoundOS resolves a path's final symlink (a REMOVE of a
// symlink would remove what it points to) and ChrootOS rewrites absolute
// symlink targets. Here paths are taken as they are, confined to the root,
// and modes are reported as Unix has them (unixMode).
type osFS struct{ root string }

var (
	_ billy.Filesystem = (*osFS)(nil)
	_ billy.Change     = (*osFS)(nil)
)

func newOSFS(root string) *osFS { return &osFS{root: root} }

// abs is name's path on this machine.
func (o *osFS) abs(name string) string {
	return filepath.Join(o.root, filepath.Clean("/"+name))
}

func (o *osFS) Create(name string) (billy.File, error) {
	return o.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

func (o *osFS) Open(name string) (billy.File, error) { return o.OpenFile(name, os.O_RDONLY, 0) }

// OpenFile does not follow a final symlink: a handle is the entry itself.
func (o *osFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	f, err := os.OpenFile(o.abs(name), flag|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return nil, err
	}
	return &osFile{File: f, name: name}, nil
}

func (o *osFS) Stat(name string) (os.FileInfo, error) {
	fi, err := os.Stat(o.abs(name))
	return unixInfo(fi), err
}

func (o *osFS) Lstat(name string) (os.FileInfo, error) {
	fi, err := os.Lstat(o.abs(name))
	return unixInfo(fi), err
}

func (o *osFS) ReadDir(name string) ([]os.FileInfo, error) {
	ents, err := os.ReadDir(o.abs(name))
	if err != nil {
		return nil, err
	}
	out := make([]os.FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue // gone since
		}
		out = append(out, unixInfo(fi))
	}
	return out, nil
}

func (o *osFS) Rename(from, to string) error         { return os.Rename(o.abs(from), o.abs(to)) }
func (o *osFS) Remove(name string) error             { return os.Remove(o.abs(name)) }
func (o *osFS) Join(elem ...string) string           { return filepath.Join(elem...) }
func (o *osFS) Symlink(target, link string) error    { return os.Symlink(target, o.abs(link)) }
func (o *osFS) Readlink(link string) (string, error) { return os.Readlink(o.abs(link)) }
func (o *osFS) Root() string                         { return o.root }

func (o *osFS) MkdirAll(name string, perm os.FileMode) error {
	return os.MkdirAll(o.abs(name), perm)
}

func (o *osFS) TempFile(dir, prefix string) (billy.File, error) {
	f, err := os.CreateTemp(o.abs(dir), prefix)
	if err != nil {
		return nil, err
	}
	return &osFile{File: f, name: filepath.Join(dir, filepath.Base(f.Name()))}, nil
}

func (o *osFS) Chroot(name string) (billy.Filesystem, error) { return newOSFS(o.abs(name)), nil }

func (o *osFS) Chmod(name string, mode os.FileMode) error { return os.Chmod(o.abs(name), mode) }
func (o *osFS) Lchown(name string, uid, gid int) error    { return os.Lchown(o.abs(name), uid, gid) }
func (o *osFS) Chown(name string, uid, gid int) error     { return os.Chown(o.abs(name), uid, gid) }
func (o *osFS) Chtimes(name string, atime, mtime time.Time) error {
	return os.Chtimes(o.abs(name), atime, mtime)
}

// osFile is an open file, named as the filesystem's caller named it.
type osFile struct {
	*os.File
	name string
}

func (f *osFile) Name() string  { return f.name }
func (f *osFile) Lock() error   { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }
func (f *osFile) Unlock() error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

// unixMode reports the set-id and sticky bits as Unix's 07000 bits, which
// go-nfs then sends as they are.
type unixMode struct{ os.FileInfo }

func unixInfo(fi os.FileInfo) os.FileInfo {
	if fi == nil {
		return nil
	}
	return unixMode{fi}
}

func (u unixMode) Mode() os.FileMode {
	m := u.FileInfo.Mode()
	st, ok := u.Sys().(*syscall.Stat_t)
	if !ok {
		return m
	}
	return m&^(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) | os.FileMode(st.Mode&0o7000)
}

// nfsConn is a server connection whose SETATTR calls the harness answers
// itself; every other call goes through to go-nfs unchanged.
type nfsConn struct {
	net.Conn // the client's connection
	n        *NFS
	in       *io.PipeReader // the calls go-nfs reads

	wmu sync.Mutex // held from the first to the last byte of a reply
	// go-nfs's replies in flight (it writes from one goroutine).
	held     bool
	hdr      []byte
	left     uint32
	lastFrag bool
	inBody   bool
	closed   sync.Once
}

func newNFSConn(conn net.Conn, n *NFS) *nfsConn {
	pr, pw := io.Pipe()
	c := &nfsConn{Conn: conn, n: n, in: pr}
	go c.pump(pw)
	return c
}

func (c *nfsConn) Read(p []byte) (int, error) { return c.in.Read(p) }

func (c *nfsConn) Close() error {
	c.closed.Do(func() {
		c.n.mu.Lock()
		delete(c.n.conns, c)
		c.n.mu.Unlock()
		_ = c.in.Close()
	})
	return c.Conn.Close()
}

// pump reads the client's calls: SETATTR it answers, the rest it hands to
// go-nfs.
func (c *nfsConn) pump(pw *io.PipeWriter) {
	r := bufio.NewReaderSize(c.Conn, 64<<10)
	for {
		rec, err := readRPCRecord(r)
		if err != nil {
			_ = pw.CloseWithError(io.EOF)
			return
		}
		if reply, ok := c.n.intercept(rec); ok {
			if err := c.reply(reply); err != nil {
				_ = pw.CloseWithError(io.EOF)
				return
			}
			continue
		}
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(rec))|0x80000000)
		if _, err := pw.Write(append(hdr[:], rec...)); err != nil {
			return
		}
	}
}

func readRPCRecord(r io.Reader) ([]byte, error) {
	var rec []byte
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, err
		}
		h := binary.BigEndian.Uint32(hdr[:])
		n := int(h & 0x7fffffff)
		if len(rec)+n > 64<<20 {
			return nil, errors.New("a call of more than 64 MiB")
		}
		start := len(rec)
		rec = append(rec, make([]byte, n)...)
		if _, err := io.ReadFull(r, rec[start:]); err != nil {
			return nil, err
		}
		if h&0x80000000 != 0 {
			return rec, nil
		}
	}
}

// reply sends one reply record of the harness's between go-nfs's.
func (c *nfsConn) reply(body []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body))|0x80000000)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.Conn.Write(append(hdr[:], body...))
	return err
}

// Write passes go-nfs's replies on, holding wmu from a record's first
// byte to its last so that the harness's replies go between records.
func (c *nfsConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if !c.held {
			c.wmu.Lock()
			c.held = true
		}
		var k int
		if !c.inBody {
			k = min(4-len(c.hdr), len(p))
			c.hdr = append(c.hdr, p[:k]...)
		} else {
			k = min(int(c.left), len(p))
		}
		m, err := c.Conn.Write(p[:k])
		written += m
		if err != nil {
			c.held, c.inBody, c.hdr = false, false, c.hdr[:0]
			c.wmu.Unlock()
			return written, err
		}
		p = p[k:]
		if !c.inBody {
			if len(c.hdr) < 4 {
				continue
			}
			h := binary.BigEndian.Uint32(c.hdr)
			c.hdr = c.hdr[:0]
			c.left, c.lastFrag, c.inBody = h&0x7fffffff, h&0x80000000 != 0, true
		} else {
			c.left -= uint32(k)
		}
		if c.inBody && c.left == 0 {
			c.inBody = false
			if c.lastFrag {
				c.held = false
				c.wmu.Unlock()
			}
		}
	}
	return written, nil
}

// NFSv3 statuses the harness answers.
const (
	nfs3OK      = 0
	nfs3Perm    = 1
	nfs3NoEnt   = 2
	nfs3IO      = 5
	nfs3Acces   = 13
	nfs3NotDir  = 20
	nfs3IsDir   = 21
	nfs3Inval   = 22
	nfs3Stale   = 70
	nfs3NotSync = 10002
)

// intercept answers the calls go-nfs gets wrong (see the package doc):
// SETATTR, and a REMOVE of a directory or an RMDIR of something else;
// ok is false for the calls go-nfs is to answer.
func (n *NFS) intercept(rec []byte) (reply []byte, ok bool) {
	d := &xdrReader{b: rec}
	xid, mtype, _, prog, vers, proc := d.u32(), d.u32(), d.u32(), d.u32(), d.u32(), d.u32()
	if d.err != nil || mtype != 0 || prog != 100003 || vers != 3 {
		return nil, false
	}
	d.u32()
	d.opaque() // credentials: go-nfs checks none either
	d.u32()
	d.opaque()
	switch proc {
	case 2:
		return n.setattr(xid, d), true
	case 12, 13:
		return n.remove(xid, proc == 13, d)
	}
	return nil, false
}

// replyHeader starts an accepted, successful RPC reply.
func replyHeader(xid uint32) *bytes.Buffer {
	w := &bytes.Buffer{}
	for _, v := range []uint32{xid, 1, 0, 0, 0, 0} { // reply, accepted, no verifier, success
		_ = binary.Write(w, binary.BigEndian, v)
	}
	return w
}

// remove refuses, as unlink(2) and rmdir(2) do, a REMOVE of a directory
// (NFS3ERR_ISDIR) and an RMDIR of anything else (NFS3ERR_NOTDIR): go-nfs
// answers both with os.Remove, which takes either. The rest go to go-nfs.
func (n *NFS) remove(xid uint32, rmdir bool, d *xdrReader) ([]byte, bool) {
	fh, name := d.opaque(), d.opaque()
	if d.err != nil {
		return nil, false
	}
	fsys, parts, err := n.handler.FromHandle(fh)
	o, isOS := fsys.(*osFS)
	if err != nil || !isOS {
		return nil, false
	}
	fi, err := os.Lstat(filepath.Join(o.abs(strings.Join(parts, "/")), filepath.Base("/"+string(name))))
	if err != nil || fi.IsDir() == rmdir {
		return nil, false
	}
	status := uint32(nfs3IsDir)
	if rmdir {
		status = nfs3NotDir
	}
	w := replyHeader(xid)
	_ = binary.Write(w, binary.BigEndian, status)
	_ = gonfs.WriteWcc(w, nil, nil)
	return w.Bytes(), true
}

// setattr answers an NFSv3 SETATTR call (RFC 1813 section 3.3.2) the way
// a Unix server does, from its arguments on.
func (n *NFS) setattr(xid uint32, d *xdrReader) []byte {
	fh := d.opaque()
	var mode, uid, gid *uint32
	var size *uint64
	opt := func() *uint32 {
		if d.u32() != 0 {
			v := d.u32()
			return &v
		}
		return nil
	}
	mode, uid, gid = opt(), opt(), opt()
	if d.u32() != 0 {
		v := d.u64()
		size = &v
	}
	times := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	for i := range times {
		switch d.u32() {
		case 1:
			times[i] = unix.Timespec{Nsec: unix.UTIME_NOW}
		case 2:
			times[i] = unix.Timespec{Sec: int64(d.u32()), Nsec: int64(d.u32())}
		}
	}
	guard := d.u32() != 0
	var guardSec, guardNsec uint32
	if guard {
		guardSec, guardNsec = d.u32(), d.u32()
	}

	w := replyHeader(xid)
	fail := func(status uint32, pre *gonfs.FileCacheAttribute, post *gonfs.FileAttribute) []byte {
		_ = binary.Write(w, binary.BigEndian, status)
		_ = gonfs.WriteWcc(w, pre, post)
		return w.Bytes()
	}
	if d.err != nil {
		return fail(nfs3Inval, nil, nil)
	}
	fsys, parts, err := n.handler.FromHandle(fh)
	o, isOS := fsys.(*osFS)
	if err != nil || !isOS {
		return fail(nfs3Stale, nil, nil)
	}
	rel := strings.Join(parts, "/")
	full := o.abs(rel)
	stat := func() (*gonfs.FileAttribute, *syscall.Stat_t) {
		fi, err := o.Lstat(rel)
		if err != nil {
			return nil, nil
		}
		return gonfs.ToFileAttribute(fi, rel), fi.Sys().(*syscall.Stat_t)
	}
	before, st := stat()
	if before == nil {
		return fail(nfs3NoEnt, nil, nil)
	}
	pre := before.AsCache()
	if guard && (uint32(st.Ctim.Sec) != guardSec || uint32(st.Ctim.Nsec) != guardNsec) {
		return fail(nfs3NotSync, pre, before)
	}
	symlink := st.Mode&syscall.S_IFMT == syscall.S_IFLNK
	// The owner before the mode: a chown clears the set-id bits.
	if uid != nil || gid != nil {
		u, g := -1, -1
		if uid != nil {
			u = int(*uid)
		}
		if gid != nil {
			g = int(*gid)
		}
		err = os.Lchown(full, u, g)
	}
	if err == nil && mode != nil && !symlink {
		err = unix.Fchmodat(unix.AT_FDCWD, full, *mode&0o7777, 0)
	}
	if err == nil && size != nil {
		err = os.Truncate(full, int64(*size))
	}
	if err == nil && (times[0].Nsec != unix.UTIME_OMIT || times[1].Nsec != unix.UTIME_OMIT) {
		err = unix.UtimesNanoAt(unix.AT_FDCWD, full, times[:], unix.AT_SYMLINK_NOFOLLOW)
	}
	after, _ := stat()
	switch {
	case err == nil:
		return fail(nfs3OK, pre, after)
	case errors.Is(err, fs.ErrNotExist):
		return fail(nfs3NoEnt, pre, after)
	case errors.Is(err, syscall.EPERM):
		return fail(nfs3Perm, pre, after)
	case errors.Is(err, syscall.EACCES):
		return fail(nfs3Acces, pre, after)
	default:
		return fail(nfs3IO, pre, after)
	}
}

// xdrReader reads XDR; the first error sticks.
type xdrReader struct {
	b   []byte
	err error
}

func (r *xdrReader) u32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = io.ErrUnexpectedEOF
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *xdrReader) u64() uint64 { return uint64(r.u32())<<32 | uint64(r.u32()) }

func (r *xdrReader) opaque() []byte {
	n := int(r.u32())
	padded := n + (4-n%4)%4
	if r.err != nil || n < 0 || len(r.b) < padded {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	v := r.b[:n]
	r.b = r.b[padded:]
	return v
}
