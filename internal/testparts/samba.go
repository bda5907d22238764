package testparts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	smb2 "github.com/cloudsoda/go-smb2"
	"github.com/cloudsoda/sddl"
)

const sambaInstallHint = "install Samba's server and its test wrappers: apt-get install samba smbclient libuid-wrapper libnss-wrapper (scripts/prereqs.sh does it when run as root)"

// The shares every Samba has, each backed by a directory of its own (Dir).
const (
	SambaShareData  = "data"
	SambaShareOther = "other"
	// SambaShareInherit's root directory carries a DACL whose ACEs are
	// inherited by what is created under it (see Samba.InheritSDDL), for
	// tests of restores into a directory whose ACL propagates.
	SambaShareInherit = "inherit"
)

// sambaNetbiosName is the server's name, which qualifies its accounts.
const sambaNetbiosName = "HAVENTEST"

// sambaStartTimeout covers smbd's first start, which creates its databases.
const sambaStartTimeout = 60 * time.Second

// Samba is a Samba file server (smbd from the system) started for one test
// on a free loopback port, with its own configuration, databases and logs
// in a temporary directory, one account, and the shares SambaShareData,
// SambaShareOther and SambaShareInherit. The shares store NT ACLs in the
// user.NTACL extended attribute (vfs acl_xattr) and DOS attributes in
// user.DOSATTRIB, so security descriptors, attributes and creation times
// round-trip without root.
//
// How smbd runs depends on who runs the test, and no system account is
// ever added:
//
//   - As root, smbd runs natively (real root, really switching to the
//     account's uid for each session). The account, "haven", exists only
//     in a passwd file of the harness's own that libnss_wrapper shows
//     smbd and Samba's tools (LD_PRELOAD); its uid is one the system does
//     not use, and the shares' directories belong to it. Root itself is
//     not the account because Samba lets uid 0 bypass every ACL check,
//     which would hide what a restore's DACLs do to the restoring
//     account.
//   - As any other user, smbd runs under Samba's own test wrappers:
//     libuid_wrapper (UID_WRAPPER=1, UID_WRAPPER_ROOT=1) lets it believe
//     it is root and switch users in pretence, and libnss_wrapper gives it
//     a passwd and group file listing root, the current user (the
//     account) and nobody/nogroup (the guest account, without which smbd
//     refuses connections). Files are created as the current user. The
//     shares ignore system ACLs (acl_xattr:ignore system acls): smbd,
//     not really root, could not write a file's NT ACL after the POSIX
//     ACL derived from it took the owner's write permission away, so the
//     NT ACLs are enforced by smbd alone, not mapped onto POSIX
//     permissions as well.
//
// Stop kills the server (every smbd process, so open connections drop)
// and Start starts it again on the same port with the same state. The
// server is stopped and its directory removed when the test ends; when
// the test failed, the end of smbd's log is printed first.
//
// A test that cannot start smbd fails with a hint on what to install: it
// is never skipped.
type Samba struct {
	// Address is "127.0.0.1:PORT".
	Address string
	Port    int
	// User and Password are the account's credentials (NTLM; the domain
	// is the server's workgroup, Workgroup, or empty).
	User, Password string
	Workgroup      string
	// UserSID is the account's SID (S-1-5-21-...-RID).
	UserSID string
	// InheritSDDL is the security descriptor set on SambaShareInherit's
	// root directory when the server was first started.
	InheritSDDL string

	t      testing.TB
	dir    string
	conf   string
	env    []string
	shares map[string]string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	out     *tailBuffer
	stopped bool
}

// StartSamba starts a Samba server for this test, as described at Samba,
// and stops it when the test ends.
func StartSamba(t testing.TB) *Samba {
	t.Helper()
	s, err := newSamba(t)
	if err != nil {
		t.Fatalf("samba: %v", err)
	}
	t.Cleanup(s.cleanup)
	if err := s.start(); err != nil {
		t.Fatalf("samba: %v", err)
	}
	if err := s.setInheritACL(); err != nil {
		t.Fatalf("samba: setting the %s share's inheritable ACL: %v", SambaShareInherit, err)
	}
	return s
}

// RunSamba starts a Samba server outside a test (make bench-nas), as
// StartSamba does for a test; stop kills it and removes its directory.
// The methods that would fail a test panic instead.
func RunSamba() (s *Samba, stop func(), err error) {
	s, err = newSamba(outsideTest{})
	if err != nil {
		return nil, nil, fmt.Errorf("samba: %w", err)
	}
	if err := s.start(); err != nil {
		s.cleanup()
		return nil, nil, fmt.Errorf("samba: %w", err)
	}
	if err := s.setInheritACL(); err != nil {
		s.cleanup()
		return nil, nil, fmt.Errorf("samba: setting the %s share's inheritable ACL: %w", SambaShareInherit, err)
	}
	return s, s.cleanup, nil
}

// LogTail is the end of each of smbd's log files, for a caller outside a
// test to show when the server misbehaves.
func (s *Samba) LogTail() string { return s.logTail() }

// outsideTest stands in for the test of a Samba run outside one
// (RunSamba): the methods of testing.TB that Samba calls; a fatal error
// panics, and logs go to standard error.
type outsideTest struct{ testing.TB }

func (outsideTest) Helper()      {}
func (outsideTest) Failed() bool { return false }
func (outsideTest) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
func (outsideTest) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// Shares lists the share names.
func (s *Samba) Shares() []string {
	return []string{SambaShareData, SambaShareOther, SambaShareInherit}
}

// Dir is the local directory behind share, for tests to compare what a
// client wrote with what landed on disk.
func (s *Samba) Dir(share string) string {
	d, ok := s.shares[share]
	if !ok {
		s.t.Fatalf("samba: no share %q", share)
	}
	return d
}

// Stop kills every smbd process of the server with SIGKILL, so that open
// connections drop at once (as when a NAS dies), and waits until they are
// gone. Stopping a stopped server does nothing. Stop may be called from
// any goroutine.
func (s *Samba) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Start starts the server again, on the same port and with the same
// shares, account and state, after Stop. It fails the test if the server
// does not start, so it must be called from the test's goroutine.
func (s *Samba) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("samba: restart: %v", err)
	}
}

// GrantPrivilege grants the account a privilege with `net sam rights
// grant`: SeSecurityPrivilege is the right to read and write SACLs,
// SeRestorePrivilege the right to give what it restores any owner and
// group. Sessions set up after the call have it; existing ones keep the
// token they started with.
func (s *Samba) GrantPrivilege(privilege string) {
	s.t.Helper()
	// net looks a bare name up in vain on a standalone server: the
	// account is qualified with the server's name.
	if out, err := s.tool("net", nil, "sam", "rights", "grant", sambaNetbiosName+`\`+s.User, privilege); err != nil {
		s.t.Fatalf("samba: net sam rights grant %s %s: %v\n%s", s.User, privilege, err, out)
	}
}

func newSamba(t testing.TB) (*Samba, error) {
	if _, err := sambaProgram("smbd"); err != nil {
		return nil, err
	}
	// Not t.TempDir: its parent is 0700, and as root the account (not
	// root) must reach the shares.
	dir, err := os.MkdirTemp("", "haven-smb-")
	if err != nil {
		return nil, err
	}
	s := &Samba{
		t:         t,
		dir:       dir,
		conf:      filepath.Join(dir, "smb.conf"),
		Workgroup: "HAVEN",
		shares:    map[string]string{},
		out:       &tailBuffer{max: 64 << 10},
	}
	if err := s.setUp(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Samba) setUp() error {
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"private", "lock", "state", "cache", "pid", "ncalrpc", "log", "binddns", "shares"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o755); err != nil {
			return err
		}
	}
	// The account and how smbd sees it (see Samba).
	uid, gid := os.Getuid(), os.Getgid()
	var preload []string
	nssWrapper, err := wrapperLibrary("libnss_wrapper.so")
	if err != nil {
		return err
	}
	if uid == 0 {
		s.User = "haven"
		uid, gid = unusedID()
		preload = []string{nssWrapper}
	} else {
		uidWrapper, err := wrapperLibrary("libuid_wrapper.so")
		if err != nil {
			return err
		}
		preload = []string{uidWrapper, nssWrapper}
		s.User = "haven"
		if u, err := user.Current(); err == nil && validUnixName(u.Username) {
			s.User = u.Username
		}
		s.env = append(s.env, "UID_WRAPPER=1", "UID_WRAPPER_ROOT=1")
	}
	group := s.User
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/false\n%s:x:%d:%d:Haven test account:%s:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", s.User, uid, gid, s.dir)
	groups := fmt.Sprintf("root:x:0:\n%s:x:%d:\nnogroup:x:65534:\n", group, gid)
	if gid == 0 || gid == 65534 {
		groups = "root:x:0:\nnogroup:x:65534:\n"
	}
	if err := os.WriteFile(filepath.Join(s.dir, "passwd"), []byte(passwd), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "group"), []byte(groups), 0o644); err != nil {
		return err
	}
	s.env = append(s.env,
		"LD_PRELOAD="+strings.Join(preload, ":"),
		"NSS_WRAPPER_PASSWD="+filepath.Join(s.dir, "passwd"),
		"NSS_WRAPPER_GROUP="+filepath.Join(s.dir, "group"),
	)

	for _, name := range s.Shares() {
		d := filepath.Join(s.dir, "shares", name)
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		if os.Getuid() == 0 {
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
		s.shares[name] = d
	}

	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	s.Address = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := os.WriteFile(s.conf, []byte(s.config()), 0o644); err != nil {
		return err
	}

	var pw [12]byte
	_, _ = rand.Read(pw[:])
	s.Password = hex.EncodeToString(pw[:])
	if out, err := s.tool("smbpasswd", strings.NewReader(s.Password+"\n"+s.Password+"\n"), "-s", "-a", s.User); err != nil {
		return fmt.Errorf("adding the account %s with smbpasswd: %v\n%s", s.User, err, out)
	}
	out, err := s.tool("pdbedit", nil, "-L", "-v", "-u", s.User)
	if err != nil {
		return fmt.Errorf("pdbedit -L -v -u %s: %v\n%s", s.User, err, out)
	}
	m := regexp.MustCompile(`(?m)^User SID:\s*(S-1-\S+)`).FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("pdbedit shows no SID for %s:\n%s", s.User, out)
	}
	s.UserSID = string(m[1])
	return nil
}

func (s *Samba) config() string {
	var b strings.Builder
	p := func(name string) string { return filepath.Join(s.dir, name) }
	fmt.Fprintf(&b, `[global]
	workgroup = %s
	netbios name = %s
	server role = standalone server
	bind interfaces only = yes
	interfaces = 127.0.0.1
	smb ports = %d
	disable netbios = yes
	load printers = no
	printing = bsd
	printcap name = /dev/null
	disable spoolss = yes
	private dir = %s
	lock directory = %s
	state directory = %s
	cache directory = %s
	pid directory = %s
	ncalrpc dir = %s
	binddns dir = %s
	usershare path =
	passdb backend = tdbsam:%s
	log file = %s
	log level = 1
	max log size = 0
	map to guest = Never
	guest account = nobody
	obey pam restrictions = no
	server min protocol = SMB2_02
`, s.Workgroup, sambaNetbiosName, s.Port, p("private"), p("lock"), p("state"), p("cache"), p("pid"),
		p("ncalrpc"), p("binddns"), p("private/passdb.tdb"), p("log/smbd.log"))
	for _, name := range s.Shares() {
		fmt.Fprintf(&b, `
[%s]
	path = %s
	read only = no
	vfs objects = acl_xattr
	acl_xattr:security_acl_name = user.NTACL
	store dos attributes = yes
	ea support = yes
`, name, s.shares[name])
		if os.Getuid() != 0 {
			// smbd only pretends to be root here, so it cannot write
			// user.NTACL once the POSIX ACL it derives from a DACL has
			// taken the owner's own write permission away: it leaves the
			// POSIX permissions alone, and enforces NT ACLs by itself.
			b.WriteString("\tacl_xattr:ignore system acls = yes\n")
		}
	}
	return b.String()
}

// tool runs one of Samba's programs on this server's configuration, with
// smbd's environment (the wrappers).
func (s *Samba) tool(name string, stdin io.Reader, args ...string) ([]byte, error) {
	path, err := sambaProgram(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if name == "smbpasswd" {
		cmd = exec.CommandContext(ctx, path, append([]string{"-c", s.conf}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, append([]string{"-s", s.conf}, args...)...)
	}
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdin = stdin
	return cmd.CombinedOutput()
}

func (s *Samba) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	smbd, err := sambaProgram("smbd")
	if err != nil {
		return err
	}
	cmd := exec.Command(smbd, "--foreground", "--no-process-group", "-s", s.conf)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	// Its own process group, so that Stop kills smbd's children (one per
	// connection) with it.
	cmd.SysProcAttr = parentDeathSignal()
	setpgid(cmd.SysProcAttr)
	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the starting thread ends (see
		// startMotoOnce).
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			_ = cmd.Wait()
		}
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting %s: %v; %s", smbd, err, sambaInstallHint)
	}
	s.cmd, s.exited, s.stopped = cmd, exited, false

	deadline := time.Now().Add(sambaStartTimeout)
	for {
		if err := s.probe(); err == nil {
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("smbd exited during start-up (%v); its output:\n%s\nits log:\n%s\nIf Samba is broken or missing, %s", cmd.ProcessState, s.out, s.logTail(), sambaInstallHint)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("smbd did not answer on %s within %v; its output:\n%s\nits log:\n%s", s.Address, sambaStartTimeout, s.out, s.logTail())
		}
	}
}

// probe tells whether smbd accepts a session: a listening socket is not
// enough, smbd binds before its databases are ready.
func (s *Samba) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess, err := s.dial(ctx)
	if err != nil {
		return err
	}
	return sess.Logoff()
}

func (s *Samba) dial(ctx context.Context) (*smb2.Session, error) {
	d := &smb2.Dialer{Initiator: &smb2.NTLMInitiator{User: s.User, Password: s.Password, Domain: s.Workgroup}}
	return d.Dial(ctx, s.Address)
}

func (s *Samba) stopLocked() {
	if s.cmd == nil {
		return
	}
	// smbd leads its process group (Setpgid), which holds its children
	// too: one signal kills them all, and the connections they served
	// drop. (Killed children are not waited for: they are not ours to
	// reap, and a container's init may leave them as zombies, which hold
	// no sockets.)
	if err := signalGroup(s.cmd.Process.Pid, os.Kill); err != nil {
		_ = s.cmd.Process.Kill()
	}
	<-s.exited
	s.cmd, s.stopped = nil, true
}

func (s *Samba) cleanup() {
	s.Stop()
	if s.t.Failed() {
		s.t.Logf("samba: smbd's output:\n%s\nsmbd's log (%s):\n%s", s.out, filepath.Join(s.dir, "log"), s.logTail())
	}
	_ = os.RemoveAll(s.dir)
}

// logTail returns the last 16 KiB of each of smbd's log files.
func (s *Samba) logTail() string {
	files, _ := filepath.Glob(filepath.Join(s.dir, "log", "*"))
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(data) > 16<<10 {
			data = data[len(data)-16<<10:]
		}
		fmt.Fprintf(&b, "==> %s <==\n%s\n", filepath.Base(f), bytes.TrimSpace(data))
	}
	return b.String()
}

// setInheritACL gives SambaShareInherit's root directory a DACL whose ACEs
// every file and directory created under it inherits: full control for
// the account, and read and execute for Everyone. It is set through SMB,
// so acl_xattr stores it as Windows would.
func (s *Samba) setInheritACL() error {
	// The first session right after smbd starts was once answered
	// STATUS_QUOTA_EXCEEDED on a loaded machine; a few tries ride it out.
	var err error
	for try := 0; try < 5; try++ {
		if err = s.trySetInheritACL(); err == nil {
			return nil
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	return err
}

func (s *Samba) trySetInheritACL() error {
	s.InheritSDDL = fmt.Sprintf("O:%sD:PAI(A;OICI;FA;;;%s)(A;OICI;0x1200a9;;;WD)", s.UserSID, s.UserSID)
	sd, err := sddl.FromString(s.InheritSDDL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer sess.Logoff()
	share, err := sess.WithContext(ctx).Mount(SambaShareInherit)
	if err != nil {
		return err
	}
	defer share.Umount()
	bin := sd.Binary()
	// SE_DACL_AUTO_INHERIT_REQ: without it the server, as Windows does,
	// drops the SE_DACL_AUTO_INHERITED ("AI") flag.
	bin[3] |= 0x01
	return share.WithContext(ctx).SetSecurityInfoRaw("", smb2.OwnerSecurityInformation|smb2.DACLSecurityInformation, rawDescriptor(bin))
}

// rawDescriptor hands a self-relative security descriptor to the SMB
// library as it is.
type rawDescriptor []byte

func (r rawDescriptor) Size() int         { return len(r) }
func (r rawDescriptor) Encode(dst []byte) { copy(dst, r) }

// sambaProgram finds one of Samba's programs on PATH or in /usr/sbin and
// /usr/bin (smbd is in /usr/sbin, often not on an ordinary user's PATH).
func sambaProgram(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/samba/sbin", "/usr/local/samba/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH nor in /usr/sbin; %s", name, sambaInstallHint)
}

// wrapperLibrary finds one of cwrap's preload libraries (libuid_wrapper.so,
// libnss_wrapper.so) in the usual library directories, or among the files
// of its Debian package.
func wrapperLibrary(name string) (string, error) {
	var dirs []string
	for _, triplet := range []string{"x86_64-linux-gnu", "aarch64-linux-gnu", "arm-linux-gnueabihf", "i386-linux-gnu", "riscv64-linux-gnu", "powerpc64le-linux-gnu", "s390x-linux-gnu"} {
		dirs = append(dirs, "/usr/lib/"+triplet, "/lib/"+triplet)
	}
	dirs = append(dirs, "/usr/lib64", "/usr/lib", "/usr/local/lib64", "/usr/local/lib")
	for _, d := range dirs {
		for _, n := range []string{name, name + ".0"} {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	pkg := strings.ReplaceAll(strings.TrimSuffix(name, ".so"), "_", "-")
	if out, err := exec.Command("dpkg", "-L", pkg).Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if b := filepath.Base(line); b == name || strings.HasPrefix(b, name+".") {
				if _, err := os.Stat(line); err == nil {
					return line, nil
				}
			}
		}
	}
	return "", fmt.Errorf("%s not found (package %s); %s", name, pkg, sambaInstallHint)
}

// unusedID returns a uid (and the same gid) that the system's accounts do
// not use, for the account that exists only in the wrapper's passwd file.
func unusedID() (int, int) {
	for id := 47000; id < 48000; id++ {
		if _, err := user.LookupId(strconv.Itoa(id)); err == nil {
			continue
		}
		if _, err := user.LookupGroupId(strconv.Itoa(id)); err == nil {
			continue
		}
		return id, id
	}
	return 47999, 47999
}

var unixName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

func validUnixName(n string) bool { return unixName.MatchString(n) && n != "root" && n != "nobody" }

// setpgid makes the child lead a process group of its own. The field
// exists on Unix only; setting it by name keeps this file building
// everywhere.
func setpgid(attr *syscall.SysProcAttr) {
	if f := reflect.ValueOf(attr).Elem().FieldByName("Setpgid"); f.IsValid() && f.CanSet() {
		f.SetBool(true)
	}
}

// signalGroup sends sig to the process group pgid (on Unix, a process
// found by a negative pid is a group).
func signalGroup(pgid int, sig os.Signal) error {
	p, err := os.FindProcess(-pgid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}
