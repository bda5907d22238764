// Package nfs is the NFS side of NAS backups: a nas.Share spoken over
// NFSv3 (RFC 1813) and its MOUNT protocol, from user space, without
// mounting anything, so that the NAS proxy needs neither root nor kernel
// modules.
//
// # The library
//
// The protocol's types and XDR decoding come from
// github.com/willscott/go-nfs-client, the fork of VMware's go-nfs-client
// that is still maintained (last change October 2025;
// github.com/vmware/go-nfs-client is refused by the module proxy): its fattr3, post_op_attr, wcc_data, fsinfo and
// entryplus3 structures, status codes and procedure numbers. It is the
// client half of go-nfs, the NFS server library the tests serve shares
// with, so both ends of the tests are kept by one maintainer. It speaks
// NFSv3 only, over TCP only, and AUTH_SYS only (no Kerberos, no NFSv4 and
// its ACLs), which is what a backup proxy of POSIX shares needs and what
// every NAS still serves.
//
// What the library lacks, and what this package adds on top of it:
//   - The transport (rpc.go). The library's RPC client reconnects behind its
//     callers' backs and retries a call on the new connection for up to 100
//     attempts of five seconds, takes no context, and can block its receiver
//     on a reply whose caller has given up. Here one TCP connection carries
//     calls multiplexed by xid, each with a context and a reply timeout, and a
//     dropped connection fails every call with nas.ErrConnectionLost; the
//     share then stays broken and the caller dials anew (nas.Dialer).
//   - Explicit ports. The library always asks the portmapper (port 111) for
//     the MOUNT and NFS ports; Config takes them, and the portmapper is asked
//     only when Address has no port.
//   - The calls, made on that transport with the library's types: WRITE at
//     any offset (the library's File writes at its one position, FILE_SYNC
//     only), FSSTAT (missing), READDIRPLUS with replies of 512 KiB (the
//     library asks for 4 KiB at a time and lists a directory again until its
//     mtime holds still), SETATTR of the owner apart from the mode, and
//     AUTH_SYS credentials whose group list holds the given group (the
//     library's always holds group 0, root's).
//   - A cache of directory handles by path, so that a capture's thousands of
//     LOOKUPs of the same parents are made once; the share's own REMOVE and
//     RENAME drop what they invalidate, and a handle the server calls stale
//     (a directory removed behind the share's back) empties the cache and
//     the call is made once more with paths looked up afresh.
//
// # Transfers
//
// READ and WRITE move min(rtmax/wtmax from FSINFO, 1 MiB) per call; a
// ReadAt or WriteAt of several such blocks sends them at once. Calls are
// spread over Config.Connections connections (4 by default): a server that
// serves a connection's calls one after another (go-nfs does) then works on
// several at a time (8 readers of 4 MiB files on 2 cores, go-nfs in the same
// process: 365-382 MB/s over one connection, 391-448 MB/s over four;
// BenchmarkParallelRead). Writes are UNSTABLE and committed when the file is
// closed; a write verifier that changes on the way (the server restarted
// and may have lost them) fails the file with nas.ErrConnectionLost, so
// that a restore writes it again.
//
// # Metadata
//
// ReadDir and Stat report the fattr3 of each entry: the type, the low 12
// mode bits (permissions, set-id and sticky), owner and group ids, link
// count, fileid and times in nanoseconds (an nfstime3 holds 1970 to 2106;
// SetMeta reports a time outside that as an error and sets the rest).
// Other types than file, dir and symlink take engine/files' names ("fifo",
// "chardev", "blockdev"), and "socket". SetMeta changes the owner first
// (changing it clears the set-id bits on most servers), then the mode and
// the times in one SETATTR, so that the times are the last thing set. A
// server that refuses the owner (a non-root proxy, a root-squashing
// export) yields an error that matches both ErrOwner and fs.ErrPermission,
// and the mode and times are still applied.
package nfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/nas"
)

// Config says which export to open and as whom.
type Config struct {
	// Address is the server, "host:port" for the NFS service, or "host"
	// alone to ask the server's portmapper (port 111) for the NFS and
	// MOUNT ports.
	Address string
	// MountPort is the MOUNT service's port; 0 means the NFS port when
	// Address has one (servers that serve both on one port, as go-nfs
	// does), and the portmapper's answer otherwise.
	MountPort int
	// Export is the exported path to mount, as the server names it
	// ("/data").
	Export string
	// UID and GID are the AUTH_SYS credentials the proxy presents: the
	// server checks every call's permissions against them (0/0 by
	// default; most exports map root to nobody unless told not to squash
	// it).
	UID, GID uint32
	// MachineName is the host name in the credentials (the local host
	// name by default).
	MachineName string
	// ReservedPort makes the connections from a port below 1024, for
	// exports that insist on it (Linux's "secure", the default there).
	// It needs root or CAP_NET_BIND_SERVICE.
	ReservedPort bool
	// Connections is how many TCP connections carry the share's calls (4
	// by default).
	Connections int
	// Timeout is how long a call may wait for its reply before the
	// connection counts as lost (60 s by default).
	Timeout time.Duration
}

// Program numbers and procedures the library does not define.
const (
	nfsProg   = nfsc.Nfs3Prog
	nfsVers   = nfsc.Nfs3Vers
	mountProg = nfsc.MountProg
	mountVers = nfsc.MountVers
	pmapProg  = 100000
	pmapVers  = 2

	procReaddirplus = nfsc.NFSProc3ReadDirPlus
	procFSStat      = 18

	// maxTransfer caps a READ or WRITE: go-nfs offers 1 GiB.
	maxTransfer = 1 << 20
	// minTransfer is what a server that says less than this gets anyway
	// asked for (RFC 1813 lets a server answer a READ with less).
	minTransfer = 4096
)

// ErrOwner marks the error of a server that refused to change an entry's
// owner or group: the proxy's credentials are not root's, or the export
// squashes root. It is a warning for a restore, not a failure.
var ErrOwner = errors.New("the NFS server refused to change the owner")

// StatusError is an NFS status other than NFS3_OK. It matches
// fs.ErrNotExist (NFS3ERR_NOENT), fs.ErrExist (NFS3ERR_EXIST) and
// fs.ErrPermission (NFS3ERR_PERM, NFS3ERR_ACCES, NFS3ERR_ROFS).
type StatusError struct {
	Op     string
	Path   string
	Status uint32
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("nfs %s %q: %s", e.Op, "/"+e.Path, statusName(e.Status))
}

// Is makes errors.Is(err, fs.ErrNotExist) and the like work.
func (e *StatusError) Is(target error) bool {
	switch target {
	case fs.ErrNotExist:
		return e.Status == nfsc.NFS3ErrNoEnt
	case fs.ErrExist:
		return e.Status == nfsc.NFS3ErrExist
	case fs.ErrPermission:
		return e.Status == nfsc.NFS3ErrPerm || e.Status == nfsc.NFS3ErrAcces || e.Status == nfsc.NFS3ErrROFS
	}
	return false
}

func statusName(s uint32) string {
	switch s {
	case nfsc.NFS3ErrPerm:
		return "NFS3ERR_PERM (not the owner)"
	case nfsc.NFS3ErrNoEnt:
		return "NFS3ERR_NOENT (no such file or directory)"
	case nfsc.NFS3ErrExist:
		return "NFS3ERR_EXIST (exists already)"
	}
	var e *nfsc.Error
	if errors.As(nfsc.NFS3Error(s), &e) {
		return e.ErrorString
	}
	return "NFS status " + strconv.FormatUint(uint64(s), 10)
}

// Dial mounts c.Export and returns it as a share.
func Dial(ctx context.Context, c Config) (nas.Share, error) {
	if c.Export == "" {
		return nil, errors.New("nfs: no export given")
	}
	if c.Connections <= 0 {
		c.Connections = 4
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.MachineName == "" {
		c.MachineName, _ = os.Hostname()
		if c.MachineName == "" {
			c.MachineName = "haven"
		}
	}
	cred := authUnix(c.MachineName, c.UID, c.GID)
	nfsAddr, mountAddr, err := ports(ctx, c, cred)
	if err != nil {
		return nil, err
	}
	root, err := mount(ctx, c, mountAddr, cred)
	if err != nil {
		return nil, err
	}
	s := &share{cfg: c, mountAddr: mountAddr, cred: cred, root: root, dirs: map[string][]byte{}}
	for range c.Connections {
		rc, err := dialRPC(ctx, nfsAddr, c.ReservedPort, cred, c.Timeout)
		if err != nil {
			s.closeConns(errClosed)
			return nil, fmt.Errorf("nfs: connecting to %s: %w", nfsAddr, err)
		}
		rc.onFail = s.connFailed
		s.conns = append(s.conns, rc)
	}
	if err := s.fsinfo(ctx); err != nil {
		s.closeConns(errClosed)
		return nil, err
	}
	return s, nil
}

// ports finds the NFS and MOUNT services' addresses.
func ports(ctx context.Context, c Config, cred []byte) (nfsAddr, mountAddr string, err error) {
	host, port, err := net.SplitHostPort(c.Address)
	if err != nil {
		// No port: ask the portmapper.
		host = strings.Trim(c.Address, "[]")
		if host == "" {
			return "", "", errors.New("nfs: no server address given")
		}
		p, err := getport(ctx, c, host, nfsProg, nfsVers)
		if err != nil {
			return "", "", err
		}
		port = strconv.Itoa(p)
		if c.MountPort == 0 {
			mp, err := getport(ctx, c, host, mountProg, mountVers)
			if err != nil {
				return "", "", err
			}
			c.MountPort = mp
		}
	}
	nfsAddr = net.JoinHostPort(host, port)
	mountAddr = nfsAddr
	if c.MountPort != 0 {
		mountAddr = net.JoinHostPort(host, strconv.Itoa(c.MountPort))
	}
	return nfsAddr, mountAddr, nil
}

// getport asks the portmapper (RFC 1833, version 2) for a TCP service.
func getport(ctx context.Context, c Config, host string, prog, vers uint32) (int, error) {
	addr := net.JoinHostPort(host, "111")
	rc, err := dialRPC(ctx, addr, false, []byte{0, 0, 0, 0, 0, 0, 0, 0}, c.Timeout)
	if err != nil {
		return 0, fmt.Errorf("nfs: asking the portmapper at %s (or give the port in the address): %w", addr, err)
	}
	defer rc.close()
	d, err := rc.call(ctx, pmapProg, pmapVers, 3, func(e *enc) {
		e.u32(prog)
		e.u32(vers)
		e.u32(6) // TCP
		e.u32(0)
	})
	if err != nil {
		return 0, fmt.Errorf("nfs: portmapper at %s: %w", addr, err)
	}
	port := d.u32()
	if d.err != nil {
		return 0, fmt.Errorf("nfs: portmapper at %s: %w", addr, d.err)
	}
	if port == 0 {
		return 0, fmt.Errorf("nfs: the server at %s does not serve program %d version %d over TCP", host, prog, vers)
	}
	return int(port), nil
}

// mount asks the MOUNT service for the export's root handle.
func mount(ctx context.Context, c Config, addr string, cred []byte) ([]byte, error) {
	rc, err := dialRPC(ctx, addr, c.ReservedPort, cred, c.Timeout)
	if err != nil {
		return nil, fmt.Errorf("nfs: connecting to the MOUNT service at %s: %w", addr, err)
	}
	defer rc.close()
	d, err := rc.call(ctx, mountProg, mountVers, nfsc.MountProc3MNT, func(e *enc) { e.str(c.Export) })
	if err != nil {
		return nil, fmt.Errorf("nfs: mounting %s from %s: %w", c.Export, addr, err)
	}
	st := d.u32()
	if d.err == nil && st != nfsc.MNT3Ok {
		err := mountError(st)
		hint := ""
		if errors.Is(err, fs.ErrPermission) && !c.ReservedPort {
			hint = " (if the export admits only reserved source ports, allow others, e.g. Linux's \"insecure\" export option, or set ReservedPort)"
		}
		return nil, fmt.Errorf("nfs: mounting %s from %s: %w%s", c.Export, addr, err, hint)
	}
	fh := d.opaque()
	n := d.u32()
	flavors := make([]uint32, 0, min(n, 16))
	for i := uint32(0); i < n && d.err == nil && i < 64; i++ {
		flavors = append(flavors, d.u32())
	}
	if d.err != nil {
		return nil, fmt.Errorf("nfs: mounting %s: a short reply: %w", c.Export, d.err)
	}
	if len(flavors) > 0 && !containsFlavor(flavors, 0) && !containsFlavor(flavors, 1) {
		return nil, fmt.Errorf("nfs: the export %s wants security flavors %v and Haven speaks AUTH_SYS (1) only: %w", c.Export, flavors, fs.ErrPermission)
	}
	return fh, nil
}

func containsFlavor(fl []uint32, f uint32) bool {
	for _, x := range fl {
		if x == f {
			return true
		}
	}
	return false
}

func mountError(st uint32) error {
	switch st {
	case nfsc.MNT3ErrNoEnt:
		return fmt.Errorf("MNT3ERR_NOENT: no such export: %w", fs.ErrNotExist)
	case nfsc.MNT3ErrPerm, nfsc.MNT3ErrAcces:
		return fmt.Errorf("MNT3ERR_ACCES: the server refuses this client: %w", fs.ErrPermission)
	case nfsc.MNT3ErrNotDir:
		return errors.New("MNT3ERR_NOTDIR: the export is not a directory")
	default:
		return fmt.Errorf("MOUNT status %d", st)
	}
}

// share is a mounted export.
type share struct {
	cfg       Config
	mountAddr string
	cred      []byte
	root      []byte
	conns     []*rpcConn
	next      atomic.Uint32
	rsize     uint32
	wsize     uint32

	mu     sync.Mutex
	failed error
	dirs   map[string][]byte // directory handles by path
}

var _ nas.Share = (*share)(nil)

func (s *share) Protocol() string { return nas.NFS }

func (s *share) SACL() (bool, string) { return false, "NFS has no SACLs" }

// connFailed breaks the whole share when one of its connections drops:
// the caller dials a new share, as the contract says.
func (s *share) connFailed(err error) {
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return
	}
	s.failed = err
	s.mu.Unlock()
	s.closeConns(err)
}

func (s *share) closeConns(err error) {
	for _, c := range s.conns {
		c.fail(err)
	}
}

func (s *share) Close() error {
	s.mu.Lock()
	failed := s.failed
	if failed == nil {
		s.failed = errClosed
	}
	s.mu.Unlock()
	if failed != nil {
		return nil
	}
	s.closeConns(errClosed)
	// UMNT tells the server's mount list the proxy is gone; it does not
	// matter to anything else, so a slow server is not waited for.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if rc, err := dialRPC(ctx, s.mountAddr, s.cfg.ReservedPort, s.cred, 2*time.Second); err == nil {
		_, _ = rc.call(ctx, mountProg, mountVers, nfsc.MountProc3UMNT, func(e *enc) { e.str(s.cfg.Export) })
		rc.close()
	}
	return nil
}

// call makes an NFS call on one of the connections and checks its
// status; on a status other than NFS3_OK it returns a *StatusError.
func (s *share) call(ctx context.Context, proc uint32, op, p string, args func(*enc)) (*dec, error) {
	s.mu.Lock()
	failed := s.failed
	s.mu.Unlock()
	if failed != nil {
		return nil, failed
	}
	c := s.conns[int(s.next.Add(1))%len(s.conns)]
	d, err := c.call(ctx, nfsProg, nfsVers, proc, args)
	if err != nil {
		return nil, fmt.Errorf("nfs %s %q: %w", op, "/"+p, err)
	}
	st := d.u32()
	if d.err != nil {
		return nil, fmt.Errorf("nfs %s %q: a short reply: %w", op, "/"+p, d.err)
	}
	if st != nfsc.NFS3Ok {
		return d, &StatusError{Op: op, Path: p, Status: st}
	}
	return d, nil
}

func (s *share) fsinfo(ctx context.Context) error {
	d, err := s.call(ctx, nfsc.NFSProc3FSInfo, "fsinfo", "", func(e *enc) { e.opaque(s.root) })
	if err != nil {
		return err
	}
	var fi nfsc.FSInfo
	d.read(&fi)
	if d.err != nil {
		return fmt.Errorf("nfs fsinfo: %w", d.err)
	}
	size := func(max, pref uint32) uint32 {
		n := max
		if n == 0 {
			n = pref
		}
		return min(max32(n, minTransfer), maxTransfer)
	}
	s.rsize = size(fi.RTMax, fi.RTPref)
	s.wsize = size(fi.WTMax, fi.WTPref)
	return nil
}

func max32(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}

// clean makes p a clean relative path ("" for the root).
func clean(p string) (string, error) {
	p = path.Clean("/" + p)[1:]
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("nfs: %q leaves the share", p)
		}
	}
	return p, nil
}

func split(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

func (s *share) cachedDir(p string) []byte {
	if p == "" {
		return s.root
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dirs[p]
}

func (s *share) rememberDir(p string, fh []byte) {
	if p == "" || fh == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirs) >= 16384 {
		clear(s.dirs)
	}
	s.dirs[p] = fh
}

// forget drops p and everything under it from the handle cache.
func (s *share) forget(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.dirs {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(s.dirs, k)
		}
	}
}

// dirHandle finds directory p's handle, from the cache or by LOOKUPs
// from the closest cached ancestor.
func (s *share) dirHandle(ctx context.Context, p string) ([]byte, error) {
	if fh := s.cachedDir(p); fh != nil {
		return fh, nil
	}
	parts := strings.Split(p, "/")
	i := len(parts) - 1
	var fh []byte
	for ; i > 0; i-- {
		if fh = s.cachedDir(strings.Join(parts[:i], "/")); fh != nil {
			break
		}
	}
	if fh == nil {
		fh = s.root
	}
	for ; i < len(parts); i++ {
		sub := strings.Join(parts[:i+1], "/")
		child, attr, err := s.lookup(ctx, fh, parts[i], sub)
		if err != nil {
			return nil, err
		}
		if attr != nil && attr.Type != nfsc.NF3Dir {
			return nil, fmt.Errorf("nfs: %q is not a directory", "/"+sub)
		}
		s.rememberDir(sub, child)
		fh = child
	}
	return fh, nil
}

// lookup is LOOKUP: the handle of name in dir, and its attributes when the
// server sends them.
func (s *share) lookup(ctx context.Context, dir []byte, name, p string) ([]byte, *nfsc.Fattr, error) {
	d, err := s.call(ctx, nfsc.NFSProc3Lookup, "lookup", p, func(e *enc) {
		e.opaque(dir)
		e.str(name)
	})
	if err != nil {
		return nil, nil, err
	}
	fh := d.opaque()
	var attr nfsc.PostOpAttr
	d.read(&attr)
	if d.err != nil {
		return nil, nil, fmt.Errorf("nfs lookup %q: %w", "/"+p, d.err)
	}
	if !attr.IsSet {
		return fh, nil, nil
	}
	return fh, &attr.Attr, nil
}

// resolve finds p's handle and attributes (without following a final
// symlink: LOOKUP never does).
func (s *share) resolve(ctx context.Context, p string) ([]byte, *nfsc.Fattr, error) {
	if p == "" {
		a, err := s.getattr(ctx, s.root, "")
		return s.root, a, err
	}
	dir, name := split(p)
	dfh, err := s.dirHandle(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	fh, a, err := s.lookup(ctx, dfh, name, p)
	if err != nil {
		return nil, nil, err
	}
	if a == nil {
		if a, err = s.getattr(ctx, fh, p); err != nil {
			return nil, nil, err
		}
	}
	if a.Type == nfsc.NF3Dir {
		s.rememberDir(p, fh)
	}
	return fh, a, nil
}

func (s *share) getattr(ctx context.Context, fh []byte, p string) (*nfsc.Fattr, error) {
	d, err := s.call(ctx, nfsc.NFSProc3GetAttr, "getattr", p, func(e *enc) { e.opaque(fh) })
	if err != nil {
		return nil, err
	}
	var a nfsc.Fattr
	d.read(&a)
	if d.err != nil {
		return nil, fmt.Errorf("nfs getattr %q: %w", "/"+p, d.err)
	}
	return &a, nil
}

func (s *share) readlink(ctx context.Context, fh []byte, p string) (string, error) {
	d, err := s.call(ctx, nfsc.NFSProc3Readlink, "readlink", p, func(e *enc) { e.opaque(fh) })
	if err != nil {
		return "", err
	}
	var attr nfsc.PostOpAttr
	d.read(&attr)
	target := d.opaque()
	if d.err != nil {
		return "", fmt.Errorf("nfs readlink %q: %w", "/"+p, d.err)
	}
	return string(target), nil
}

// info turns a fattr3 into a nas.Info.
func info(name string, a *nfsc.Fattr) nas.Info {
	return nas.Info{
		Name:    name,
		Type:    typeName(a.Type),
		Size:    int64(a.Filesize),
		MtimeNs: ns(a.Mtime),
		AtimeNs: ns(a.Atime),
		CtimeNs: ns(a.Ctime),
		FileID:  a.Fileid,
		Mode:    a.FileMode & 0o7777,
		UID:     a.UID,
		GID:     a.GID,
		Nlink:   a.Nlink,
	}
}

func typeName(t uint32) string {
	switch t {
	case nfsc.NF3Reg:
		return nas.TypeFile
	case nfsc.NF3Dir:
		return nas.TypeDir
	case nfsc.NF3Lnk:
		return nas.TypeSymlink
	case nfsc.NF3FIFO:
		return files.TypeFIFO
	case nfsc.NF3Chr:
		return files.TypeCharDev
	case nfsc.NF3Blk:
		return files.TypeBlockDev
	case nfsc.NF3Sock:
		return "socket"
	default:
		return fmt.Sprintf("nfs-type-%d", t)
	}
}

func ns(t nfsc.NFS3Time) int64 { return int64(t.Seconds)*1e9 + int64(t.Nseconds) }

func (s *share) stat(ctx context.Context, p string) (nas.Info, error) {
	p, err := clean(p)
	if err != nil {
		return nas.Info{}, err
	}
	fh, a, err := s.resolve(ctx, p)
	if err != nil {
		return nas.Info{}, err
	}
	_, name := split(p)
	in := info(name, a)
	if a.Type == nfsc.NF3Lnk {
		if in.Target, err = s.readlink(ctx, fh, p); err != nil {
			return nas.Info{}, err
		}
	}
	return in, nil
}

// READDIRPLUS sizes: dircount bounds the names and cookies, maxcount the
// whole reply.
const (
	dirCount = 64 << 10
	maxCount = 512 << 10
)

func (s *share) readDir(ctx context.Context, dir string) ([]nas.Info, error) {
	dir, err := clean(dir)
	if err != nil {
		return nil, err
	}
	fh, err := s.dirHandle(ctx, dir)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		out, err := s.readdir(ctx, dir, fh)
		var se *StatusError
		if errors.As(err, &se) && se.Status == nfsc.NFS3ErrBadCookie && attempt < 3 {
			continue // the directory changed under the listing: start again
		}
		return out, err
	}
}

func (s *share) readdir(ctx context.Context, dir string, fh []byte) ([]nas.Info, error) {
	type pending struct {
		i    int
		name string
		fh   []byte
	}
	var out []nas.Info
	var missing []pending // entries without attributes or handle
	var links []pending
	var cookie, verf uint64
	for {
		d, err := s.call(ctx, procReaddirplus, "readdirplus", dir, func(e *enc) {
			e.opaque(fh)
			e.u64(cookie)
			e.u64(verf)
			e.u32(dirCount)
			e.u32(maxCount)
		})
		if err != nil {
			return nil, err
		}
		var dattr nfsc.PostOpAttr
		d.read(&dattr)
		verf = d.u64()
		for d.bool() {
			var ent nfsc.EntryPlus
			d.read(&ent)
			if d.err != nil {
				break
			}
			cookie = ent.Cookie
			if ent.FileName == "." || ent.FileName == ".." {
				continue
			}
			p := path.Join(dir, ent.FileName)
			var h []byte
			if ent.Handle.IsSet {
				h = ent.Handle.FH
			}
			if !ent.Attr.IsSet || h == nil {
				missing = append(missing, pending{len(out), ent.FileName, h})
				out = append(out, nas.Info{Name: ent.FileName})
				continue
			}
			in := info(ent.FileName, &ent.Attr.Attr)
			switch ent.Attr.Attr.Type {
			case nfsc.NF3Dir:
				s.rememberDir(p, h)
			case nfsc.NF3Lnk:
				links = append(links, pending{len(out), ent.FileName, h})
			}
			out = append(out, in)
		}
		eof := d.bool()
		if d.err != nil {
			return nil, fmt.Errorf("nfs readdirplus %q: %w", "/"+dir, d.err)
		}
		if eof {
			break
		}
	}
	for _, m := range missing {
		p := path.Join(dir, m.name)
		h, a, err := s.resolve(ctx, p)
		if errors.Is(err, fs.ErrNotExist) {
			out[m.i].Name = "" // gone since the listing
			continue
		}
		if err != nil {
			return nil, err
		}
		out[m.i] = info(m.name, a)
		if a.Type == nfsc.NF3Lnk {
			links = append(links, pending{m.i, m.name, h})
		}
	}
	for _, l := range links {
		t, err := s.readlink(ctx, l.fh, path.Join(dir, l.name))
		switch {
		case err == nil:
			out[l.i].Target = t
		case nas.IsConnectionLost(err) || ctx.Err() != nil || isStale(err):
			return nil, err
		default:
			// Listed with the rest; the capture warns.
			out[l.i].Err = fmt.Errorf("reading the link's target: %w", err)
		}
	}
	if len(missing) > 0 {
		kept := out[:0]
		for _, in := range out {
			if in.Name != "" {
				kept = append(kept, in)
			}
		}
		out = kept
	}
	return out, nil
}

// sattr is a sattr3: what a SETATTR, CREATE, MKDIR or SYMLINK sets.
type sattr struct {
	mode, uid, gid *uint32
	size           *uint64
	atime, mtime   *nfsc.NFS3Time
}

func (e *enc) sattr(a sattr) {
	opt32 := func(v *uint32) {
		e.bool(v != nil)
		if v != nil {
			e.u32(*v)
		}
	}
	opt32(a.mode)
	opt32(a.uid)
	opt32(a.gid)
	e.bool(a.size != nil)
	if a.size != nil {
		e.u64(*a.size)
	}
	for _, t := range []*nfsc.NFS3Time{a.atime, a.mtime} {
		if t == nil {
			e.u32(uint32(nfsc.DontChange))
		} else {
			e.u32(uint32(nfsc.SetToClientTime))
			e.u32(t.Seconds)
			e.u32(t.Nseconds)
		}
	}
}

func u32(v uint32) *uint32 { return &v }

// nfsTime converts nanoseconds since the epoch to an nfstime3, which
// holds unsigned 32-bit seconds: 1970 to 2106.
func nfsTime(n int64) (*nfsc.NFS3Time, error) {
	sec, nsec := n/1e9, n%1e9
	if n < 0 || sec > math.MaxUint32 {
		return nil, fmt.Errorf("the time %s is outside what NFSv3 can hold (1970 to 2106)", time.Unix(0, n).UTC().Format(time.RFC3339Nano))
	}
	return &nfsc.NFS3Time{Seconds: uint32(sec), Nseconds: uint32(nsec)}, nil
}

func (s *share) setattr(ctx context.Context, fh []byte, p string, a sattr) error {
	_, err := s.call(ctx, nfsc.NFSProc3SetAttr, "setattr", p, func(e *enc) {
		e.opaque(fh)
		e.sattr(a)
		e.bool(false) // no ctime guard
	})
	return err
}

func (s *share) setMeta(ctx context.Context, p string, m nas.Meta) error {
	p, err := clean(p)
	if err != nil {
		return err
	}
	fh, a, err := s.resolve(ctx, p)
	if err != nil {
		return err
	}
	// The owner first: a chown clears the set-id bits, so the mode must
	// come after it.
	var ownerErr error
	if m.UID != a.UID || m.GID != a.GID {
		err := s.setattr(ctx, fh, p, sattr{uid: u32(m.UID), gid: u32(m.GID)})
		switch {
		case errors.Is(err, fs.ErrPermission):
			ownerErr = fmt.Errorf("nfs: setting the owner of %q to %d:%d (the proxy's credentials are uid %d; an export that squashes root refuses it too): %w: %w",
				"/"+p, m.UID, m.GID, s.cfg.UID, ErrOwner, err)
		case err != nil:
			return err
		}
	}
	var last sattr
	if a.Type != nfsc.NF3Lnk {
		// A symlink's mode means nothing and most servers cannot set it.
		last.mode = u32(m.Mode & 0o7777)
	}
	var timeErr error
	if m.AtimeNs != 0 {
		if last.atime, err = nfsTime(m.AtimeNs); err != nil {
			timeErr = fmt.Errorf("nfs: %q: %w", "/"+p, err)
		}
	}
	if m.MtimeNs != 0 {
		if last.mtime, err = nfsTime(m.MtimeNs); err != nil {
			timeErr = fmt.Errorf("nfs: %q: %w", "/"+p, err)
		}
	}
	if last.mode != nil || last.atime != nil || last.mtime != nil {
		if err := s.setattr(ctx, fh, p, last); err != nil {
			return err
		}
	}
	return errors.Join(ownerErr, timeErr)
}

// parent finds p's directory handle and p's name in it.
func (s *share) parent(ctx context.Context, p string) ([]byte, string, error) {
	if p == "" {
		return nil, "", errors.New("nfs: the share's root cannot be made, removed or renamed")
	}
	dir, name := split(p)
	fh, err := s.dirHandle(ctx, dir)
	return fh, name, err
}

// newEntry decodes the diropres3 of CREATE, MKDIR and SYMLINK: the new
// entry's handle when the server sends it.
func newEntry(d *dec) []byte {
	if !d.bool() {
		return nil
	}
	return d.opaque()
}

func (s *share) mkdir(ctx context.Context, p string) error {
	p, err := clean(p)
	if err != nil {
		return err
	}
	if p == "" {
		return nil
	}
	dfh, name, err := s.parent(ctx, p)
	if err != nil {
		return err
	}
	d, err := s.call(ctx, nfsc.NFSProc3Mkdir, "mkdir", p, func(e *enc) {
		e.opaque(dfh)
		e.str(name)
		// Private until the restore gives it its own mode.
		e.sattr(sattr{mode: u32(0o700)})
	})
	if errors.Is(err, fs.ErrExist) {
		_, a, serr := s.resolve(ctx, p)
		if serr == nil && a.Type == nfsc.NF3Dir {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	s.rememberDir(p, newEntry(d))
	return nil
}

func (s *share) symlink(ctx context.Context, target, p string) error {
	p, err := clean(p)
	if err != nil {
		return err
	}
	dfh, name, err := s.parent(ctx, p)
	if err != nil {
		return err
	}
	_, err = s.call(ctx, nfsc.NFSProc3Symlink, "symlink", p, func(e *enc) {
		e.opaque(dfh)
		e.str(name)
		e.sattr(sattr{})
		e.str(target)
	})
	return err
}

func (s *share) remove(ctx context.Context, p string) error {
	p, err := clean(p)
	if err != nil {
		return err
	}
	dfh, name, err := s.parent(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, a, err := s.lookup(ctx, dfh, name, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	proc, op := uint32(nfsc.NFSProc3Remove), "remove"
	if a != nil && a.Type == nfsc.NF3Dir {
		proc, op = nfsc.NFSProc3RmDir, "rmdir"
	}
	s.forget(p)
	_, err = s.call(ctx, proc, op, p, func(e *enc) {
		e.opaque(dfh)
		e.str(name)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (s *share) rename(ctx context.Context, from, to string) error {
	from, err := clean(from)
	if err != nil {
		return err
	}
	if to, err = clean(to); err != nil {
		return err
	}
	ffh, fname, err := s.parent(ctx, from)
	if err != nil {
		return err
	}
	tfh, tname, err := s.parent(ctx, to)
	if err != nil {
		return err
	}
	s.forget(from)
	s.forget(to)
	_, err = s.call(ctx, nfsc.NFSProc3Rename, "rename", from, func(e *enc) {
		e.opaque(ffh)
		e.str(fname)
		e.opaque(tfh)
		e.str(tname)
	})
	return err
}

// isStale tells a handle the server no longer knows: a directory removed
// (and perhaps made again) behind the share's back, whose handle the
// share had cached.
func isStale(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Status == nfsc.NFS3ErrStale || se.Status == nfsc.NFS3ErrBadHandle)
}

// fresh runs op, and once more with no cached handles when a handle was
// stale.
func (s *share) fresh(op func() error) error {
	err := op()
	if isStale(err) {
		s.mu.Lock()
		clear(s.dirs)
		s.mu.Unlock()
		err = op()
	}
	return err
}

func (s *share) Stat(ctx context.Context, p string) (in nas.Info, err error) {
	err = s.fresh(func() error { in, err = s.stat(ctx, p); return err })
	return in, err
}

func (s *share) ReadDir(ctx context.Context, dir string) (out []nas.Info, err error) {
	err = s.fresh(func() error { out, err = s.readDir(ctx, dir); return err })
	return out, err
}

func (s *share) SetMeta(ctx context.Context, p string, m nas.Meta) error {
	return s.fresh(func() error { return s.setMeta(ctx, p, m) })
}

func (s *share) Mkdir(ctx context.Context, p string) error {
	return s.fresh(func() error { return s.mkdir(ctx, p) })
}

func (s *share) Symlink(ctx context.Context, target, p string) error {
	return s.fresh(func() error { return s.symlink(ctx, target, p) })
}

func (s *share) Remove(ctx context.Context, p string) error {
	return s.fresh(func() error { return s.remove(ctx, p) })
}

func (s *share) Rename(ctx context.Context, from, to string) error {
	return s.fresh(func() error { return s.rename(ctx, from, to) })
}

func (s *share) Free(ctx context.Context) (uint64, error) {
	d, err := s.call(ctx, procFSStat, "fsstat", "", func(e *enc) { e.opaque(s.root) })
	if err != nil {
		return 0, err
	}
	var attr nfsc.PostOpAttr
	d.read(&attr)
	_, _ = d.u64(), d.u64() // tbytes, fbytes
	avail := d.u64()
	if d.err != nil {
		return 0, fmt.Errorf("nfs fsstat: %w", d.err)
	}
	return avail, nil
}
