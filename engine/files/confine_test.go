package files_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// TestConfinedRestoreDoesNotFollowLinksOut: a directory of the restore
// that is a symlink out of the roots (planted before the restore, or made
// by it) does not lead the restore's writes out; without confinement it
// would.
func TestConfinedRestoreDoesNotFollowLinksOut(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 256 << 10})
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "d"), 0o750))
	must(t, os.WriteFile(filepath.Join(src, "d", "authorized_keys"), []byte("ssh-ed25519 AAAA attacker"), 0o600))
	must(t, os.WriteFile(filepath.Join(src, "kept.txt"), []byte("fine"), 0o600))
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p1")

	restore := func(confined bool) (dst, outside string, err error) {
		dst, outside = t.TempDir(), t.TempDir()
		must(t, os.MkdirAll(filepath.Join(dst, src), 0o750))
		must(t, os.Symlink(outside, filepath.Join(dst, src, "d")))
		opts := files.RestoreOptions{Target: dst, Conflict: files.ConflictSkip}
		if confined {
			c, cerr := confine.New([]string{dst}, nil, "")
			must(t, cerr)
			opts.Confine = c
		}
		_, err = files.Restore(context.Background(), env.Repo, root, opts)
		return dst, outside, err
	}
	_, outside, err := restore(false)
	must(t, err)
	if _, err := os.Stat(filepath.Join(outside, "authorized_keys")); err != nil {
		t.Fatalf("without confinement the planted link should lead the restore out (the case this test guards): %v", err)
	}
	dst, outside, err := restore(true)
	if !errors.Is(err, files.ErrIncomplete) {
		t.Fatalf("confined restore through a link out: %v, want ErrIncomplete", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("the confined restore wrote %d entries outside its roots", len(entries))
	}
	if b, err := os.ReadFile(filepath.Join(dst, src, "kept.txt")); err != nil || string(b) != "fine" {
		t.Errorf("the rest of the tree was not restored: %q %v", b, err)
	}
	// A target outside the roots is refused before anything is written.
	c, err := confine.New([]string{filepath.Join(dst, "only-here")}, nil, "")
	must(t, err)
	if _, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: filepath.Join(dst, "elsewhere"), Confine: c}); !errors.Is(err, confine.ErrOutside) {
		t.Errorf("restore into a target outside the roots: %v", err)
	}
}

// TestConfinedCaptureSkipsDeniedFiles: denied files and directories are
// skipped under any name, a hard link included, and an include path that
// leads into them is refused.
func TestConfinedCaptureSkipsDeniedFiles(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 256 << 10})
	src := t.TempDir()
	secrets := filepath.Join(src, "secrets")
	must(t, os.MkdirAll(secrets, 0o700))
	key := filepath.Join(src, "master.key")
	must(t, os.WriteFile(key, []byte("key material"), 0o600))
	must(t, os.Link(key, filepath.Join(src, "innocent-name")))
	must(t, os.WriteFile(filepath.Join(secrets, "token"), []byte("hvn_secret"), 0o600))
	must(t, os.WriteFile(filepath.Join(src, "doc.txt"), []byte("data"), 0o600))
	c, err := confine.New([]string{src}, []string{secrets, key}, "")
	must(t, err)

	ctx := context.Background()
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	var warned []string
	root, _, err := files.Capture(ctx, w, env.Repo, files.CaptureOptions{Paths: []string{src}, Params: smallParams, Confine: c,
		Warn: func(p string, err error) { warned = append(warned, p) }})
	must(t, err)
	must(t, w.Commit(ctx, "p1", root))
	dst := t.TempDir()
	_, err = files.Restore(ctx, env.Repo, root, files.RestoreOptions{Target: dst})
	must(t, err)
	got := fingerprint(t, filepath.Join(dst, src))
	for _, p := range []string{"secrets", "secrets/token", "master.key", "innocent-name"} {
		if _, ok := got[p]; ok {
			t.Errorf("%s was backed up", p)
		}
	}
	if _, ok := got["doc.txt"]; !ok || len(warned) != 3 {
		t.Errorf("doc.txt should be backed up and the 3 denied entries named in warnings: %v %v", got, warned)
	}

	w, err = env.Repo.NewWriter(ctx, "")
	must(t, err)
	defer w.Abort(ctx)
	if _, _, err := files.Capture(ctx, w, env.Repo, files.CaptureOptions{Paths: []string{filepath.Join(src, "innocent-name")}, Confine: c}); !errors.Is(err, confine.ErrOutside) {
		t.Errorf("an include path that is a hard link to a denied file: %v", err)
	}
}
