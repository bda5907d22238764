package testparts

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	gonfs "github.com/willscott/go-nfs"
)

// call builds an NFSv3 call record (without its record mark).
func nfsCall(proc uint32, args ...any) []byte {
	var b []byte
	u32 := func(v uint32) { b = binary.BigEndian.AppendUint32(b, v) }
	for _, v := range []uint32{7, 0, 2, 100003, 3, proc, 0, 0, 0, 0} { // xid, call, rpc 2, NFS 3, proc, AUTH_NONE, no verifier
		u32(v)
	}
	for _, a := range args {
		switch v := a.(type) {
		case uint32:
			u32(v)
		case []byte:
			u32(uint32(len(v)))
			b = append(b, v...)
			b = append(b, make([]byte, (4-len(v)%4)%4)...)
		case string:
			u32(uint32(len(v)))
			b = append(b, v...)
			b = append(b, make([]byte, (4-len(v)%4)%4)...)
		}
	}
	return b
}

// status is the NFS status of a reply the harness made.
func status(t *testing.T, reply []byte) uint32 {
	t.Helper()
	if len(reply) < 28 {
		t.Fatalf("a reply of %d bytes", len(reply))
	}
	return binary.BigEndian.Uint32(reply[24:])
}

func TestNFSIntercept(t *testing.T) {
	n := StartNFS(t)
	data := n.exports[n.Export]
	for _, d := range []string{"dir", "tmp"} {
		if err := os.Mkdir(filepath.Join(n.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(n.Dir, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := n.handler.ToHandle(data, []string{})
	file := n.handler.ToHandle(data, []string{"file"})

	// REMOVE of a directory and RMDIR of a file are refused as unlink(2) and
	// rmdir(2) refuse them; the others go to go-nfs.
	if reply, ok := n.intercept(nfsCall(12, root, "dir")); !ok || status(t, reply) != nfs3IsDir {
		t.Fatalf("REMOVE of a directory: intercepted %v", ok)
	}
	if reply, ok := n.intercept(nfsCall(13, root, "file")); !ok || status(t, reply) != nfs3NotDir {
		t.Fatalf("RMDIR of a file: intercepted %v", ok)
	}
	for _, c := range [][]byte{nfsCall(12, root, "file"), nfsCall(13, root, "dir"), nfsCall(3, root, "file")} {
		if _, ok := n.intercept(c); ok {
			t.Fatalf("call %x intercepted", c[20:24])
		}
	}

	// SETATTR: the owner, all 12 mode bits (set-id bits kept although the
	// owner changed), and times to the nanosecond.
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if uid == 0 {
		uid, gid = 1234, 2345
	}
	reply, ok := n.intercept(nfsCall(2, file,
		uint32(1), uint32(0o6755), uint32(1), uid, uint32(1), gid, uint32(0), // mode, uid, gid, no size
		uint32(2), uint32(1500000000), uint32(987654321), // atime
		uint32(2), uint32(1600000000), uint32(123456789), // mtime
		uint32(0))) // no guard
	if !ok || status(t, reply) != nfs3OK {
		t.Fatalf("SETATTR: intercepted %v, reply %x", ok, reply)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(n.Dir, "file"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o6755 || st.Uid != uid || st.Gid != gid || st.Mtim.Nano() != 1600000000_123456789 || st.Atim.Nano() != 1500000000_987654321 {
		t.Fatalf("after SETATTR: mode %o owner %d:%d mtime %d atime %d", st.Mode&0o7777, st.Uid, st.Gid, st.Mtim.Nano(), st.Atim.Nano())
	}
	// The set-id and sticky bits are reported as Unix has them.
	fi, err := data.Lstat("file")
	if err != nil || uint32(fi.Mode())&0o7777 != 0o6755 {
		t.Fatalf("file reported with mode %o (%v)", uint32(fi.Mode())&0o7777, err)
	}
	if err := os.Chmod(filepath.Join(n.Dir, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if fi, err := data.Lstat("tmp"); err != nil || uint32(fi.Mode())&0o7777 != 0o1777 || !fi.IsDir() {
		t.Fatalf("tmp reported with mode %o (%v)", uint32(fi.Mode())&0o7777, err)
	}
	// A chown the server's process may not make is NFS3ERR_PERM.
	if os.Getuid() != 0 {
		reply, _ := n.intercept(nfsCall(2, file, uint32(0), uint32(1), uint32(os.Getuid()+1), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0)))
		if s := status(t, reply); s != nfs3Perm {
			t.Fatalf("chown as uid %d: status %d, want NFS3ERR_PERM", os.Getuid(), s)
		}
	}
	// A handle the server never gave is stale.
	if reply, _ := n.intercept(nfsCall(2, []byte("not a handle, not at all"), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0))); status(t, reply) != nfs3Stale {
		t.Fatalf("SETATTR of an unknown handle: status %d", status(t, reply))
	}
}

func TestNFSExports(t *testing.T) {
	n := StartNFS(t)
	h := &nfsHandler{n: n}
	for _, e := range []string{n.Export, n.OtherExport} {
		if st, fsys, _ := h.Mount(t.Context(), nil, gonfs.MountRequest{Dirpath: []byte(e)}); st != gonfs.MountStatusOk || fsys.(*osFS).root == "" {
			t.Fatalf("mount %s: %d", e, st)
		}
	}
	if _, fsys, _ := h.Mount(t.Context(), nil, gonfs.MountRequest{Dirpath: []byte(n.Export)}); fsys.(*osFS).root != n.Dir {
		t.Fatalf("%s serves %s, not %s", n.Export, fsys.(*osFS).root, n.Dir)
	}
	if _, fsys, _ := h.Mount(t.Context(), nil, gonfs.MountRequest{Dirpath: []byte(n.OtherExport)}); fsys.(*osFS).root != n.OtherDir || n.Dir == n.OtherDir {
		t.Fatalf("%s serves %s, not %s", n.OtherExport, fsys.(*osFS).root, n.OtherDir)
	}
	if st, _, _ := h.Mount(t.Context(), nil, gonfs.MountRequest{Dirpath: []byte("/nope")}); st != gonfs.MountStatusErrNoEnt {
		t.Fatalf("mount /nope: %d", st)
	}
	// A symlink's target is kept as it is, and removing the link leaves
	// what it points to.
	data := n.exports[n.Export]
	if err := os.WriteFile(filepath.Join(n.Dir, "target"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := data.Symlink("/target", "link"); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(filepath.Join(n.Dir, "link")); err != nil || got != "/target" {
		t.Fatalf("link -> %q (%v)", got, err)
	}
	if err := data.Remove("link"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, "target")); err != nil {
		t.Fatalf("target after removing the link: %v", err)
	}
	if _, err := data.Lstat("../../etc/passwd"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a path out of the root: %v", err)
	}
}

// Stop drops the connections and the port; Start serves on the same port.
func TestNFSStopStart(t *testing.T) {
	n := StartNFS(t)
	conn, err := net.Dial("tcp", n.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A NULL call, answered.
	call := nfsCall(0)
	rec := append(binary.BigEndian.AppendUint32(nil, uint32(len(call))|0x80000000), call...)
	if _, err := conn.Write(rec); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := readRPCRecord(conn); err != nil {
		t.Fatalf("NULL: %v", err)
	}
	n.Stop()
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a connection after Stop reads %v, want io.EOF", err)
	}
	if c, err := net.Dial("tcp", n.Address); err == nil {
		c.Close()
		t.Fatal("the port still takes connections after Stop")
	}
	n.Start()
	c2, err := net.Dial("tcp", n.Address)
	if err != nil {
		t.Fatalf("after Start: %v", err)
	}
	defer c2.Close()
	if _, err := c2.Write(rec); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := readRPCRecord(c2); err != nil {
		t.Fatalf("NULL after Start: %v", err)
	}
	if len(n.Clients()) != 2 {
		t.Fatalf("%d clients recorded, want 2", len(n.Clients()))
	}
}
