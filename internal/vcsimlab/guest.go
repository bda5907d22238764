package vcsimlab

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

func notADirectory(p string) *guestFault {
	return &guestFault{fmt.Sprintf("guest path %q is not a directory", p), &types.NotADirectory{FileFault: types.FileFault{File: p}}}
}

func notAFile(p string) *guestFault {
	return &guestFault{fmt.Sprintf("guest path %q is a directory", p), &types.NotAFile{FileFault: types.FileFault{File: p}}}
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
		return "", notADirectory(p)
	}
	return dir, nil
}

// stat resolves p (see resolve for follow) and describes what is there;
// fi is nil if nothing is. Lstat serves both cases: with follow, resolve
// has already replaced a final symlink by its target.
func (vm *labVM) stat(p string, follow bool) (string, fs.FileInfo, *guestFault) {
	file, f := vm.resolve(p, follow)
	if f != nil {
		return "", nil, f
	}
	fi, _ := os.Lstat(file)
	return file, fi, nil
}

// file is stat for a path that must name an existing non-directory.
func (vm *labVM) file(p string, follow bool) (string, fs.FileInfo, *guestFault) {
	file, fi, f := vm.stat(p, follow)
	switch {
	case f != nil:
		return "", nil, f
	case fi == nil:
		return "", nil, notFound(p)
	case fi.IsDir():
		return "", nil, notAFile(p)
	}
	return file, fi, nil
}

// guestCall runs a guest operation for an authenticated caller and turns
// its outcome into the SOAP body's Res and Fault_, one of them nil.
func guestCall[R any](l *Lab, ctx *simulator.Context, ref types.ManagedObjectReference, auth types.BaseGuestAuthentication,
	op func(*labVM) (*R, *guestFault)) (*R, *soap.Fault) {
	vm, f := l.login(ctx, ref, auth)
	var res *R
	if f == nil {
		res, f = op(vm)
	}
	if f != nil {
		return nil, f.soap()
	}
	return res, nil
}

func (m *guestFiles) CreateTemporaryDirectoryInGuest(ctx *simulator.Context, req *types.CreateTemporaryDirectoryInGuest) soap.HasFault {
	body := &methods.CreateTemporaryDirectoryInGuestBody{}
	body.Res, body.Fault_ = guestCall(m.lab, ctx, req.Vm, req.Auth, func(vm *labVM) (*types.CreateTemporaryDirectoryInGuestResponse, *guestFault) {
		base := req.DirectoryPath
		if base == "" {
			base = filepath.Join(vm.sandbox, guestTmp)
			// A guest recreates its /tmp at boot; a client may have removed ours.
			os.MkdirAll(base, 0o700)
		}
		parent, f := vm.directory(base)
		if f != nil {
			return nil, f
		}
		dir, err := os.MkdirTemp(parent, req.Prefix+"*"+req.Suffix)
		if err != nil {
			return nil, &guestFault{err.Error(), &types.InvalidArgument{InvalidProperty: "prefix"}}
		}
		return &types.CreateTemporaryDirectoryInGuestResponse{Returnval: dir}, nil
	})
	return body
}

func (m *guestFiles) DeleteDirectoryInGuest(ctx *simulator.Context, req *types.DeleteDirectoryInGuest) soap.HasFault {
	body := &methods.DeleteDirectoryInGuestBody{}
	body.Res, body.Fault_ = guestCall(m.lab, ctx, req.Vm, req.Auth, func(vm *labVM) (*types.DeleteDirectoryInGuestResponse, *guestFault) {
		p := req.DirectoryPath
		dir, fi, f := vm.stat(p, false)
		if f != nil {
			return nil, f
		}
		if fi == nil {
			return nil, notFound(p)
		}
		if dir == vm.sandbox {
			return nil, denied(p, "is the root of the guest's file system")
		}
		if !fi.IsDir() {
			return nil, notADirectory(p)
		}
		if !req.Recursive {
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
				return nil, &guestFault{fmt.Sprintf("guest directory %q is not empty", p),
					&types.DirectoryNotEmpty{FileFault: types.FileFault{File: p}}}
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, &guestFault{err.Error(), &types.FileFault{File: p}}
		}
		return &types.DeleteDirectoryInGuestResponse{}, nil
	})
	return body
}

func (m *guestFiles) DeleteFileInGuest(ctx *simulator.Context, req *types.DeleteFileInGuest) soap.HasFault {
	body := &methods.DeleteFileInGuestBody{}
	body.Res, body.Fault_ = guestCall(m.lab, ctx, req.Vm, req.Auth, func(vm *labVM) (*types.DeleteFileInGuestResponse, *guestFault) {
		file, _, f := vm.file(req.FilePath, false)
		if f != nil {
			return nil, f
		}
		if err := os.Remove(file); err != nil {
			return nil, &guestFault{err.Error(), &types.FileFault{File: req.FilePath}}
		}
		return &types.DeleteFileInGuestResponse{}, nil
	})
	return body
}

func (m *guestFiles) InitiateFileTransferToGuest(ctx *simulator.Context, req *types.InitiateFileTransferToGuest) soap.HasFault {
	body := &methods.InitiateFileTransferToGuestBody{}
	body.Res, body.Fault_ = guestCall(m.lab, ctx, req.Vm, req.Auth, func(vm *labVM) (*types.InitiateFileTransferToGuestResponse, *guestFault) {
		_, fi, f := vm.stat(req.GuestFilePath, true)
		if f != nil {
			return nil, f
		}
		if fi != nil {
			if fi.IsDir() {
				return nil, notAFile(req.GuestFilePath)
			}
			if !req.Overwrite {
				return nil, &guestFault{fmt.Sprintf("guest file %q exists", req.GuestFilePath),
					&types.FileAlreadyExists{FileFault: types.FileFault{File: req.GuestFilePath}}}
			}
		}
		t := &transfer{vm: vm, path: req.GuestFilePath, put: true, overwrite: req.Overwrite, perm: 0o644}
		if a, ok := req.FileAttributes.(*types.GuestPosixFileAttributes); ok && a.Permissions != 0 {
			t.perm = os.FileMode(a.Permissions) & os.ModePerm
		}
		return &types.InitiateFileTransferToGuestResponse{Returnval: m.lab.transferURL(t)}, nil
	})
	return body
}

func (m *guestFiles) InitiateFileTransferFromGuest(ctx *simulator.Context, req *types.InitiateFileTransferFromGuest) soap.HasFault {
	body := &methods.InitiateFileTransferFromGuestBody{}
	body.Res, body.Fault_ = guestCall(m.lab, ctx, req.Vm, req.Auth, func(vm *labVM) (*types.InitiateFileTransferFromGuestResponse, *guestFault) {
		_, fi, f := vm.file(req.GuestFilePath, true)
		if f != nil {
			return nil, f
		}
		mtime := fi.ModTime()
		return &types.InitiateFileTransferFromGuestResponse{Returnval: types.FileTransferInformation{
			Attributes: &types.GuestPosixFileAttributes{
				GuestFileAttributes: types.GuestFileAttributes{ModificationTime: &mtime},
				Permissions:         int64(fi.Mode().Perm()),
			},
			Size: fi.Size(),
			Url:  m.lab.transferURL(&transfer{vm: vm, path: req.GuestFilePath}),
		}}, nil
	})
	return body
}

// transferURL registers a one-time transfer and returns its URL on the
// simulator's own server.
func (l *Lab) transferURL(t *transfer) string {
	token := newToken()
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
	body.Res, body.Fault_ = guestCall(m.lab, ctx, req.Vm, req.Auth, func(vm *labVM) (*types.StartProgramInGuestResponse, *guestFault) {
		pid, f := m.lab.guest.start(vm, req.Spec)
		if f != nil {
			return nil, f
		}
		return &types.StartProgramInGuestResponse{Returnval: pid}, nil
	})
	return body
}

// start runs a program spec in vm's guest and returns its guest pid.
func (g *guestState) start(vm *labVM, s types.BaseGuestProgramSpec) (int64, *guestFault) {
	if s == nil {
		return 0, &guestFault{"no program spec", &types.InvalidArgument{InvalidProperty: "spec"}}
	}
	spec := s.GetGuestProgramSpec()
	noProgram := func(msg string) *guestFault {
		return &guestFault{msg, &types.FileNotFound{FileFault: types.FileFault{File: spec.ProgramPath}}}
	}
	if !filepath.IsAbs(spec.ProgramPath) {
		return 0, noProgram(fmt.Sprintf("program path %q is not absolute", spec.ProgramPath))
	}
	if fi, err := os.Stat(spec.ProgramPath); err != nil || fi.IsDir() {
		return 0, noProgram(fmt.Sprintf("program %q does not exist", spec.ProgramPath))
	}
	dir := vm.sandbox
	if spec.WorkingDirectory != "" {
		var f *guestFault
		if dir, f = vm.directory(spec.WorkingDirectory); f != nil {
			return 0, f
		}
	}
	// The spec's variables are the whole environment, as in vSphere;
	// without them the guest's defaults apply, not the host's (which
	// may hold secrets).
	env := spec.EnvVariables
	if len(env) == 0 {
		path := cmp.Or(os.Getenv("PATH"), "/usr/local/bin:/usr/bin:/bin")
		env = []string{"PATH=" + path, "HOME=" + vm.sandbox, "TMPDIR=" + filepath.Join(vm.sandbox, guestTmp),
			"USER=" + vm.guestUser, "LOGNAME=" + vm.guestUser}
	}
	cmd := guestCommand(spec.ProgramPath, spec.Arguments)
	cmd.Dir = dir
	cmd.Env = env

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return 0, &guestFault{"the lab is shutting down", &types.GuestOperationsUnavailable{}}
	}
	if err := cmd.Start(); err != nil {
		return 0, noProgram(err.Error())
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
	return p.info.Pid, nil
}

// ListProcessesInGuest lists the programs started in the guest (running
// and exited), or those of req.Pids.
func (m *guestProcesses) ListProcessesInGuest(ctx *simulator.Context, req *types.ListProcessesInGuest) soap.HasFault {
	body := &methods.ListProcessesInGuestBody{}
	body.Res, body.Fault_ = guestCall(m.lab, ctx, req.Vm, req.Auth, func(vm *labVM) (*types.ListProcessesInGuestResponse, *guestFault) {
		res := &types.ListProcessesInGuestResponse{}
		g := &m.lab.guest
		g.mu.Lock()
		for _, p := range g.procs {
			if p.vm == vm.moref && (len(req.Pids) == 0 || slices.Contains(req.Pids, p.info.Pid)) {
				info := p.info
				if p.info.EndTime != nil {
					// A copy: the waiting goroutine sets EndTime under g.mu.
					end := *p.info.EndTime
					info.EndTime = &end
				}
				res.Returnval = append(res.Returnval, info)
			}
		}
		g.mu.Unlock()
		slices.SortFunc(res.Returnval, func(a, b types.GuestProcessInfo) int { return cmp.Compare(a.Pid, b.Pid) })
		return res, nil
	})
	return body
}

// TerminateProcessInGuest sends TERM to the program's process group and
// KILL after terminateGrace, as VMware Tools does on POSIX guests. A
// program that has already exited is not found, as in a real guest.
func (m *guestProcesses) TerminateProcessInGuest(ctx *simulator.Context, req *types.TerminateProcessInGuest) soap.HasFault {
	body := &methods.TerminateProcessInGuestBody{}
	body.Res, body.Fault_ = guestCall(m.lab, ctx, req.Vm, req.Auth, func(vm *labVM) (*types.TerminateProcessInGuestResponse, *guestFault) {
		g := &m.lab.guest
		g.mu.Lock()
		p := g.procs[req.Pid]
		running := p != nil && p.vm == vm.moref && p.info.EndTime == nil
		g.mu.Unlock()
		if !running {
			return nil, &guestFault{fmt.Sprintf("no running process %d in the guest", req.Pid), &types.GuestProcessNotFound{Pid: req.Pid}}
		}
		signalGroup(p.cmd.Process, false)
		go func() {
			select {
			case <-p.done:
			case <-time.After(terminateGrace):
				signalGroup(p.cmd.Process, true)
			}
		}()
		return &types.TerminateProcessInGuestResponse{}, nil
	})
	return body
}
