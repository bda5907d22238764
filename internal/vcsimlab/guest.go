package vcsimlab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Guest operations run on the host: a lab VM's guest file system is its
// sandbox directory, and its programs are host processes started in it.
// That is no isolation (a program can reach anything the host user can);
// the sandbox keeps the file-manager methods, which take paths from
// clients, from touching anything else, as a guest's file system would.

// guestTmp is the sandbox's temporary directory, the default parent of
// CreateTemporaryDirectoryInGuest (a guest's /tmp).
const guestTmp = "tmp"

// transferPath is where the simulator's server serves file transfer URLs.
const transferPath = "/vcsimlab/guestFile"

// transferTTL bounds how long a transfer URL stays usable, as ESXi's
// tickets expire.
const transferTTL = 10 * time.Minute

// shortTimeout bounds the lab's own cleanup steps.
const shortTimeout = 10 * time.Second

// terminateGrace is how long a terminated program has to exit after TERM
// before it is killed, as VMware Tools escalates on POSIX guests.
const terminateGrace = 2 * time.Second

type guestState struct {
	mu        sync.Mutex
	procs     map[int64]*guestProc
	nextPID   int64
	transfers map[string]*transfer
	closing   bool
}

func (g *guestState) init() {
	g.procs = map[int64]*guestProc{}
	// Guest pids are the lab's own, not host pids, which the host may reuse.
	g.nextPID = 1000
	g.transfers = map[string]*transfer{}
}

type guestProc struct {
	vm   string // moref value
	info types.GuestProcessInfo
	cmd  *exec.Cmd
	done chan struct{}
}

type transfer struct {
	vm        *labVM
	path      string // guest path as given
	put       bool
	overwrite bool
	perm      os.FileMode
	expires   time.Time
}

// stopAll kills every running guest program and waits (briefly) for them.
func (g *guestState) stopAll() {
	g.mu.Lock()
	g.closing = true
	var running []*guestProc
	for _, p := range g.procs {
		if p.info.EndTime == nil {
			running = append(running, p)
			signalGroup(p.cmd.Process, true)
		}
	}
	g.mu.Unlock()
	deadline := time.After(shortTimeout)
	for _, p := range running {
		select {
		case <-p.done:
		case <-deadline:
			return
		}
	}
}

type guestFiles struct {
	mo.GuestFileManager
	lab *Lab
}

type guestProcesses struct {
	mo.GuestProcessManager
	lab *Lab
}

func guestFileManager(ref types.ManagedObjectReference) mo.GuestFileManager {
	return mo.GuestFileManager{Self: ref}
}

func guestProcessManager(ref types.ManagedObjectReference) mo.GuestProcessManager {
	return mo.GuestProcessManager{Self: ref}
}

// guestFault is a method fault with the message a client shows.
type guestFault struct {
	msg   string
	fault types.BaseMethodFault
}

func (f *guestFault) soap() *soap.Fault { return simulator.Fault(f.msg, f.fault) }

func denied(p, why string) *guestFault {
	return &guestFault{fmt.Sprintf("guest path %q %s", p, why), &types.GuestPermissionDenied{}}
}

func notFound(p string) *guestFault {
	return &guestFault{fmt.Sprintf("guest file %q does not exist", p), &types.FileNotFound{FileFault: types.FileFault{File: p}}}
}

// login checks what vSphere checks before any guest operation: the VM
// exists, is a lab VM (the only ones with a guest here), is powered on,
// and the credentials are its guest's.
func (l *Lab) login(ctx *simulator.Context, ref types.ManagedObjectReference, auth types.BaseGuestAuthentication) (*labVM, *guestFault) {
	vm, ok := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return nil, &guestFault{"no such VM", &types.ManagedObjectNotFound{Obj: ref}}
	}
	lvm := l.labVMByRef(ref.Value)
	if lvm == nil {
		return nil, &guestFault{"guest operations are available only on VMs created by the lab",
			&types.GuestOperationsUnavailable{}}
	}
	var state types.VirtualMachinePowerState
	ctx.WithLock(vm, func() { state = vm.Runtime.PowerState })
	if state != types.VirtualMachinePowerStatePoweredOn {
		return nil, &guestFault{fmt.Sprintf("the VM is %s; guest operations need it powered on", state),
			&types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOn, ExistingState: state}}
	}
	cred, ok := auth.(*types.NamePasswordAuthentication)
	if !ok || cred.Username != lvm.guestUser || cred.Password != lvm.guestPassword {
		return nil, &guestFault{"the guest user name or password is incorrect", &types.InvalidGuestLogin{}}
	}
	return lvm, nil
}

// within reports whether p is root or below it; both are clean and absolute.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// resolve maps a guest path to the host path it names, refusing anything
// outside the sandbox, including by way of symlinks. The last element is
// followed only if follow is set, so that deleting a symlink deletes the
// link, wherever it points.
func (vm *labVM) resolve(p string, follow bool) (string, *guestFault) {
	if p == "" || !filepath.IsAbs(p) {
		return "", denied(p, "is not an absolute path")
	}
	clean := filepath.Clean(p)
	if !within(vm.sandbox, clean) {
		return "", denied(p, "is outside the guest's file system "+vm.sandbox)
	}
	if clean == vm.sandbox {
		return clean, nil
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(clean))
	if errors.Is(err, fs.ErrNotExist) {
		return "", notFound(p)
	}
	if err != nil || !within(vm.sandbox, dir) {
		return "", denied(p, "leads outside the guest's file system")
	}
	full := filepath.Join(dir, filepath.Base(clean))
	if fi, err := os.Lstat(full); follow && err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(full)
		if err != nil {
			return "", notFound(p)
		}
		if !within(vm.sandbox, target) {
			return "", denied(p, "leads outside the guest's file system")
		}
		full = target
	}
	return full, nil
}

// directory resolves p and requires it to be an existing directory.
func (vm *labVM) directory(p string) (string, *guestFault) {
	dir, f := vm.resolve(p, true)
	if f != nil {
		return "", f
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", notFound(p)
	}
	if !fi.IsDir() {
		return "", &guestFault{fmt.Sprintf("guest path %q is not a directory", p), &types.NotADirectory{FileFault: types.FileFault{File: p}}}
	}
	return dir, nil
}

func (m *guestFiles) CreateTemporaryDirectoryInGuest(ctx *simulator.Context, req *types.CreateTemporaryDirectoryInGuest) soap.HasFault {
	body := &methods.CreateTemporaryDirectoryInGuestBody{}
	vm, f := m.lab.login(ctx, req.Vm, req.Auth)
	if f == nil {
		var parent string
		base := req.DirectoryPath
		if base == "" {
			base = filepath.Join(vm.sandbox, guestTmp)
			// A guest recreates its /tmp at boot; a client may have removed ours.
			os.MkdirAll(base, 0o700)
		}
		if parent, f = vm.directory(base); f == nil {
			dir, err := os.MkdirTemp(parent, req.Prefix+"*"+req.Suffix)
			if err != nil {
				f = &guestFault{err.Error(), &types.InvalidArgument{InvalidProperty: "prefix"}}
			} else {
				body.Res = &types.CreateTemporaryDirectoryInGuestResponse{Returnval: dir}
			}
		}
	}
	if f != nil {
		body.Fault_ = f.soap()
	}
	return body
}

func (m *guestFiles) DeleteDirectoryInGuest(ctx *simulator.Context, req *types.DeleteDirectoryInGuest) soap.HasFault {
	body := &methods.DeleteDirectoryInGuestBody{}
	f := func() *guestFault {
		vm, f := m.lab.login(ctx, req.Vm, req.Auth)
		if f != nil {
			return f
		}
		dir, f := vm.resolve(req.DirectoryPath, false)
		if f != nil {
			return f
		}
		if dir == vm.sandbox {
			return denied(req.DirectoryPath, "is the root of the guest's file system")
		}
		fi, err := os.Lstat(dir)
		if err != nil {
			return notFound(req.DirectoryPath)
		}
		if !fi.IsDir() {
			return &guestFault{fmt.Sprintf("guest path %q is not a directory", req.DirectoryPath),
				&types.NotADirectory{FileFault: types.FileFault{File: req.DirectoryPath}}}
		}
		if !req.Recursive {
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
				return &guestFault{fmt.Sprintf("guest directory %q is not empty", req.DirectoryPath),
					&types.DirectoryNotEmpty{FileFault: types.FileFault{File: req.DirectoryPath}}}
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			return &guestFault{err.Error(), &types.FileFault{File: req.DirectoryPath}}
		}
		return nil
	}()
	if f != nil {
		body.Fault_ = f.soap()
	} else {
		body.Res = &types.DeleteDirectoryInGuestResponse{}
	}
	return body
}

func (m *guestFiles) DeleteFileInGuest(ctx *simulator.Context, req *types.DeleteFileInGuest) soap.HasFault {
	body := &methods.DeleteFileInGuestBody{}
	f := func() *guestFault {
		vm, f := m.lab.login(ctx, req.Vm, req.Auth)
		if f != nil {
			return f
		}
		file, f := vm.resolve(req.FilePath, false)
		if f != nil {
			return f
		}
		fi, err := os.Lstat(file)
		if err != nil {
			return notFound(req.FilePath)
		}
		if fi.IsDir() {
			return &guestFault{fmt.Sprintf("guest path %q is a directory", req.FilePath),
				&types.NotAFile{FileFault: types.FileFault{File: req.FilePath}}}
		}
		if err := os.Remove(file); err != nil {
			return &guestFault{err.Error(), &types.FileFault{File: req.FilePath}}
		}
		return nil
	}()
	if f != nil {
		body.Fault_ = f.soap()
	} else {
		body.Res = &types.DeleteFileInGuestResponse{}
	}
	return body
}

func (m *guestFiles) InitiateFileTransferToGuest(ctx *simulator.Context, req *types.InitiateFileTransferToGuest) soap.HasFault {
	body := &methods.InitiateFileTransferToGuestBody{}
	f := func() *guestFault {
		vm, f := m.lab.login(ctx, req.Vm, req.Auth)
		if f != nil {
			return f
		}
		file, f := vm.resolve(req.GuestFilePath, true)
		if f != nil {
			return f
		}
		if fi, err := os.Stat(file); err == nil {
			if fi.IsDir() {
				return &guestFault{fmt.Sprintf("guest path %q is a directory", req.GuestFilePath),
					&types.NotAFile{FileFault: types.FileFault{File: req.GuestFilePath}}}
			}
			if !req.Overwrite {
				return &guestFault{fmt.Sprintf("guest file %q exists", req.GuestFilePath),
					&types.FileAlreadyExists{FileFault: types.FileFault{File: req.GuestFilePath}}}
			}
		}
		t := &transfer{vm: vm, path: req.GuestFilePath, put: true, overwrite: req.Overwrite, perm: 0o644}
		if a, ok := req.FileAttributes.(*types.GuestPosixFileAttributes); ok && a.Permissions != 0 {
			t.perm = os.FileMode(a.Permissions) & os.ModePerm
		}
		body.Res = &types.InitiateFileTransferToGuestResponse{Returnval: m.lab.transferURL(t)}
		return nil
	}()
	if f != nil {
		body.Fault_ = f.soap()
	}
	return body
}

func (m *guestFiles) InitiateFileTransferFromGuest(ctx *simulator.Context, req *types.InitiateFileTransferFromGuest) soap.HasFault {
	body := &methods.InitiateFileTransferFromGuestBody{}
	f := func() *guestFault {
		vm, f := m.lab.login(ctx, req.Vm, req.Auth)
		if f != nil {
			return f
		}
		file, f := vm.resolve(req.GuestFilePath, true)
		if f != nil {
			return f
		}
		fi, err := os.Stat(file)
		if err != nil {
			return notFound(req.GuestFilePath)
		}
		if fi.IsDir() {
			return &guestFault{fmt.Sprintf("guest path %q is a directory", req.GuestFilePath),
				&types.NotAFile{FileFault: types.FileFault{File: req.GuestFilePath}}}
		}
		mtime := fi.ModTime()
		body.Res = &types.InitiateFileTransferFromGuestResponse{Returnval: types.FileTransferInformation{
			Attributes: &types.GuestPosixFileAttributes{
				GuestFileAttributes: types.GuestFileAttributes{ModificationTime: &mtime},
				Permissions:         int64(fi.Mode().Perm()),
			},
			Size: fi.Size(),
			Url:  m.lab.transferURL(&transfer{vm: vm, path: req.GuestFilePath}),
		}}
		return nil
	}()
	if f != nil {
		body.Fault_ = f.soap()
	}
	return body
}

// transferURL registers a one-time transfer and returns its URL on the
// simulator's own server.
func (l *Lab) transferURL(t *transfer) string {
	b := make([]byte, 16)
	rand.Read(b)
	token := hex.EncodeToString(b)
	now := time.Now()
	t.expires = now.Add(transferTTL)
	l.guest.mu.Lock()
	for k, old := range l.guest.transfers {
		if now.After(old.expires) {
			delete(l.guest.transfers, k)
		}
	}
	l.guest.transfers[token] = t
	l.guest.mu.Unlock()
	u := *l.Server.URL
	u.User = nil
	u.Path = transferPath
	u.RawQuery = "token=" + token
	return u.String()
}

// serveTransfer is the other half of InitiateFileTransfer{To,From}Guest:
// PUT stores the body as the guest file, GET returns it. Each URL works once.
func (l *Lab) serveTransfer(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	l.guest.mu.Lock()
	t := l.guest.transfers[token]
	if t == nil || time.Now().After(t.expires) {
		l.guest.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	if (t.put && r.Method != http.MethodPut) || (!t.put && r.Method != http.MethodGet) {
		l.guest.mu.Unlock()
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	delete(l.guest.transfers, token)
	l.guest.mu.Unlock()

	// Resolved again: the guest may have changed its files since the
	// transfer was initiated.
	file, f := t.vm.resolve(t.path, true)
	if f != nil {
		http.Error(w, f.msg, http.StatusForbidden)
		return
	}
	if !t.put {
		in, err := os.Open(file)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer in.Close()
		fi, err := in.Stat()
		if err != nil || fi.IsDir() {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, filepath.Base(file), fi.ModTime(), in)
		return
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !t.overwrite {
		flags |= os.O_EXCL
	}
	out, err := os.OpenFile(file, flags, t.perm)
	if errors.Is(err, fs.ErrExist) {
		http.Error(w, "the guest file exists", http.StatusConflict)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, err = io.Copy(out, r.Body)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(file, t.perm)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// StartProgramInGuest runs the program as VMware Tools does on a Linux
// guest: through a shell, so that Arguments may redirect. Program paths
// are the host's (the host plays the guest's OS), but the working
// directory must be in the sandbox.
func (m *guestProcesses) StartProgramInGuest(ctx *simulator.Context, req *types.StartProgramInGuest) soap.HasFault {
	body := &methods.StartProgramInGuestBody{}
	f := func() *guestFault {
		vm, f := m.lab.login(ctx, req.Vm, req.Auth)
		if f != nil {
			return f
		}
		if req.Spec == nil {
			return &guestFault{"no program spec", &types.InvalidArgument{InvalidProperty: "spec"}}
		}
		spec := req.Spec.GetGuestProgramSpec()
		if !filepath.IsAbs(spec.ProgramPath) {
			return &guestFault{fmt.Sprintf("program path %q is not absolute", spec.ProgramPath),
				&types.FileNotFound{FileFault: types.FileFault{File: spec.ProgramPath}}}
		}
		if fi, err := os.Stat(spec.ProgramPath); err != nil || fi.IsDir() {
			return &guestFault{fmt.Sprintf("program %q does not exist", spec.ProgramPath),
				&types.FileNotFound{FileFault: types.FileFault{File: spec.ProgramPath}}}
		}
		dir := vm.sandbox
		if spec.WorkingDirectory != "" {
			if dir, f = vm.directory(spec.WorkingDirectory); f != nil {
				return f
			}
		}
		// The spec's variables are the whole environment, as in vSphere;
		// without them the guest's defaults apply, not the host's (which
		// may hold secrets).
		env := spec.EnvVariables
		if len(env) == 0 {
			path := os.Getenv("PATH")
			if path == "" {
				path = "/usr/local/bin:/usr/bin:/bin"
			}
			env = []string{"PATH=" + path, "HOME=" + vm.sandbox, "TMPDIR=" + filepath.Join(vm.sandbox, guestTmp),
				"USER=" + vm.guestUser, "LOGNAME=" + vm.guestUser}
		}
		cmd := guestCommand(spec.ProgramPath, spec.Arguments)
		cmd.Dir = dir
		cmd.Env = env

		g := &m.lab.guest
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.closing {
			return &guestFault{"the lab is shutting down", &types.GuestOperationsUnavailable{}}
		}
		if err := cmd.Start(); err != nil {
			return &guestFault{err.Error(), &types.FileNotFound{FileFault: types.FileFault{File: spec.ProgramPath}}}
		}
		g.nextPID++
		p := &guestProc{vm: vm.moref, cmd: cmd, done: make(chan struct{}), info: types.GuestProcessInfo{
			Name: filepath.Base(spec.ProgramPath), Pid: g.nextPID, Owner: vm.guestUser,
			CmdLine: strings.TrimSpace(spec.ProgramPath + " " + spec.Arguments), StartTime: time.Now(),
		}}
		g.procs[p.info.Pid] = p
		go func() {
			cmd.Wait()
			end := time.Now()
			g.mu.Lock()
			p.info.EndTime = &end
			p.info.ExitCode = exitStatus(cmd.ProcessState)
			g.mu.Unlock()
			close(p.done)
		}()
		body.Res = &types.StartProgramInGuestResponse{Returnval: p.info.Pid}
		return nil
	}()
	if f != nil {
		body.Fault_ = f.soap()
	}
	return body
}

// ListProcessesInGuest lists the programs started in the guest (running
// and exited), or those of req.Pids.
func (m *guestProcesses) ListProcessesInGuest(ctx *simulator.Context, req *types.ListProcessesInGuest) soap.HasFault {
	body := &methods.ListProcessesInGuestBody{}
	vm, f := m.lab.login(ctx, req.Vm, req.Auth)
	if f != nil {
		body.Fault_ = f.soap()
		return body
	}
	want := map[int64]bool{}
	for _, pid := range req.Pids {
		want[pid] = true
	}
	g := &m.lab.guest
	res := &types.ListProcessesInGuestResponse{}
	g.mu.Lock()
	for _, p := range g.procs {
		if p.vm == vm.moref && (len(want) == 0 || want[p.info.Pid]) {
			info := p.info
			if p.info.EndTime != nil {
				end := *p.info.EndTime
				info.EndTime = &end
			}
			res.Returnval = append(res.Returnval, info)
		}
	}
	g.mu.Unlock()
	sort.Slice(res.Returnval, func(i, j int) bool { return res.Returnval[i].Pid < res.Returnval[j].Pid })
	body.Res = res
	return body
}

// TerminateProcessInGuest sends TERM to the program's process group and
// KILL after terminateGrace, as VMware Tools does on POSIX guests. A
// program that has already exited is not found, as in a real guest.
func (m *guestProcesses) TerminateProcessInGuest(ctx *simulator.Context, req *types.TerminateProcessInGuest) soap.HasFault {
	body := &methods.TerminateProcessInGuestBody{}
	vm, f := m.lab.login(ctx, req.Vm, req.Auth)
	if f != nil {
		body.Fault_ = f.soap()
		return body
	}
	g := &m.lab.guest
	g.mu.Lock()
	p := g.procs[req.Pid]
	running := p != nil && p.vm == vm.moref && p.info.EndTime == nil
	g.mu.Unlock()
	if !running {
		body.Fault_ = simulator.Fault(fmt.Sprintf("no running process %d in the guest", req.Pid), &types.GuestProcessNotFound{Pid: req.Pid})
		return body
	}
	signalGroup(p.cmd.Process, false)
	go func() {
		select {
		case <-p.done:
		case <-time.After(terminateGrace):
			signalGroup(p.cmd.Process, true)
		}
	}()
	body.Res = &types.TerminateProcessInGuestResponse{}
	return body
}
