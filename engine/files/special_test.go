package files_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// TestFIFOsAndDeviceNodes backs up a FIFO (any user can make one) and
// /dev/null (a character device any user can read the metadata of). The
// FIFO comes back with its mode and time for every user; the device node
// comes back with its major and minor numbers as root, and as any other
// user is a warning naming it, without failing the restore.
func TestFIFOsAndDeviceNodes(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	ctx := context.Background()
	src := t.TempDir()
	fifo := filepath.Join(src, "pipe")
	must(t, unix.Mkfifo(fifo, 0o640))
	must(t, os.Chmod(fifo, 0o640))
	when := time.Unix(1_600_000_000, 5)
	must(t, os.Chtimes(fifo, when, when))
	var null unix.Stat_t
	must(t, unix.Stat("/dev/null", &null))
	if null.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Fatal("/dev/null is not a character device on this host")
	}

	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	root, _, err := files.Capture(ctx, w, env.Repo, files.CaptureOptions{Paths: []string{src, "/dev/null"},
		Warn: func(p string, err error) { t.Errorf("capture warning on %s: %v", p, err) }})
	must(t, err)
	must(t, w.Commit(ctx, "special", root))

	dst := t.TempDir()
	var warnings []string
	st, err := files.Restore(ctx, env.Repo, root, files.RestoreOptions{Target: dst, Owner: os.Geteuid() == 0,
		Warn: func(p string, err error) { warnings = append(warnings, p+": "+err.Error()) }})
	must(t, err)

	fi, err := os.Lstat(filepath.Join(dst, fifo))
	must(t, err)
	if fi.Mode().Type() != fs.ModeNamedPipe || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(when) {
		t.Errorf("restored FIFO: %v %v, want a named pipe, 0640, %v", fi.Mode(), fi.ModTime(), when)
	}

	restoredNull := filepath.Join(dst, "dev", "null")
	if os.Geteuid() == 0 {
		var got unix.Stat_t
		must(t, unix.Lstat(restoredNull, &got))
		if got.Mode&unix.S_IFMT != unix.S_IFCHR || got.Rdev != null.Rdev || got.Mode&0o777 != null.Mode&0o777 {
			t.Errorf("restored /dev/null: mode %o rdev %d:%d, want a character device %d:%d mode %o", got.Mode,
				unix.Major(got.Rdev), unix.Minor(got.Rdev), unix.Major(null.Rdev), unix.Minor(null.Rdev), null.Mode&0o777)
		}
		if len(warnings) != 0 || st.NotCreated != 0 {
			t.Errorf("warnings as root: %q", warnings)
		}
	} else {
		if _, err := os.Lstat(restoredNull); err == nil {
			t.Error("a device node appeared without root")
		}
		if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "/dev/null: ") || !strings.Contains(warnings[0], "needs root") || st.NotCreated != 1 {
			t.Errorf("as uid %d, want one warning naming /dev/null, got %q (not created %d)", os.Geteuid(), warnings, st.NotCreated)
		}
	}
	if st.Special == 0 {
		t.Errorf("no special file counted: %+v", st)
	}
}
