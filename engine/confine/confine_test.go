package confine_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
)

// TestCheck judges paths by where they lead: "..", symlinks (the last one
// too, for Check; not for CheckEntry), denied trees inside the roots, and
// hard links to denied files.
func TestCheck(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	secret := filepath.Join(root, "secret")
	key := filepath.Join(base, "key")
	for _, d := range []string{filepath.Join(root, "ok"), secret, filepath.Join(base, "out")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(key, []byte("k"), 0o600)
	os.Link(key, filepath.Join(root, "ok", "key-link"))
	os.Symlink(filepath.Join(base, "out"), filepath.Join(root, "out-link"))
	os.Symlink(secret, filepath.Join(root, "secret-link"))
	r, err := confine.New([]string{root}, []string{secret, key}, " (hint)")
	if err != nil {
		t.Fatal(err)
	}
	for p, allowed := range map[string]bool{
		filepath.Join(root, "ok"):                true,
		filepath.Join(root, "ok", "new", "file"): true,
		root:                                     true,
		base:                                     false,
		filepath.Join(root, "..", "out"):         false,
		filepath.Join(root, "out-link"):          false,
		filepath.Join(root, "out-link", "x"):     false,
		secret:                                   false,
		filepath.Join(root, "secret-link", "token"):    false,
		filepath.Join(root, "ok", "key-link"):          false,
		filepath.Join(root, "ok", "..", "secret", "x"): false,
	} {
		err := r.Check(p)
		if allowed != (err == nil) || (err != nil && !errors.Is(err, confine.ErrOutside)) {
			t.Errorf("Check(%s) = %v, want allowed=%v", p, err, allowed)
		}
	}
	// The entry itself is replaced, not followed; its directory is.
	if err := r.CheckEntry(filepath.Join(root, "out-link")); err != nil {
		t.Errorf("CheckEntry of a link inside the roots: %v", err)
	}
	if err := r.CheckEntry(filepath.Join(root, "out-link", "x")); err == nil {
		t.Error("CheckEntry through a link out of the roots was allowed")
	}
	if !r.Above(base) || r.Above(root) || r.Above(filepath.Join(base, "out")) {
		t.Error("Above: want true only for the directories above a root")
	}
	none, _ := confine.New(nil, nil, " (set --roots)")
	if err := none.Check(root); err == nil || !errors.Is(err, confine.ErrOutside) {
		t.Errorf("no roots allow nothing: %v", err)
	}
}
