package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestBrowseCommands drives `haven points ls|find|diff|dump` and `haven
// restore --dry-run --include --exclude` against two real points.
func TestBrowseCommands(t *testing.T) {
	f := newFixture(t)
	writeData(t, f.src, 3, 300<<10)
	backup := func() string {
		t.Helper()
		code, out, _ := haven(t, "-o", "json", "backup", "now", f.set, "--wait")
		var j api.Job
		if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j.PointID == "" {
			t.Fatalf("backup now --wait: exit %d, %s", code, out)
		}
		return j.PointID
	}
	p1 := backup()
	if err := os.WriteFile(filepath.Join(f.src, "notes.txt"), []byte("notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(f.src, "f001.bin"))
	p2 := backup()

	if code, out, _ := haven(t, "points", "ls", p2, f.src); code != 0 ||
		out != f.src+"/f000.bin\n"+f.src+"/f002.bin\n"+f.src+"/notes.txt\n" {
		t.Errorf("points ls: exit %d, %q", code, out)
	}
	if code, out, _ := haven(t, "points", "ls", "-R", "--long", p2, "/"); code != 0 || !strings.Contains(out, "0644") ||
		!strings.Contains(out, f.src+"/notes.txt") || !strings.Contains(out, "300.0 KiB") {
		t.Errorf("points ls -R --long: exit %d, %q", code, out)
	}
	if code, out, _ := haven(t, "points", "find", "f001.*", "--asset", f.set); code != 0 || !strings.Contains(out, p1) || strings.Contains(out, p2) {
		t.Errorf("points find: exit %d, %q, want only %s", code, out, p1)
	}
	if code, out, _ := haven(t, "points", "diff", p1, p2); code != 0 || !strings.Contains(out, "+ "+f.src+"/notes.txt\n") ||
		!strings.Contains(out, "- "+f.src+"/f001.bin\n") || strings.Contains(out, "f000.bin") {
		t.Errorf("points diff: exit %d, %q", code, out)
	}
	want, _ := os.ReadFile(filepath.Join(f.src, "f002.bin"))
	if code, out, _ := haven(t, "points", "dump", p2, f.src+"/f002.bin"); code != 0 || !bytes.Equal([]byte(out), want) {
		t.Errorf("points dump: exit %d, %d bytes, want the %d of the file", code, len(out), len(want))
	}
	if code, _, errOut := haven(t, "points", "dump", p2, f.src+"/missing"); code != 1 || !strings.Contains(errOut, "missing") {
		t.Errorf("points dump of a missing file: exit %d, %q", code, errOut)
	}

	dst := t.TempDir()
	code, out, _ := haven(t, "restore", p2, "--target", dst, "--include", "*.bin", "--exclude", "f000.bin", "--dry-run")
	if code != 0 || !strings.Contains(out, "write     "+f.src+"/f002.bin") || strings.Contains(out, "notes.txt") ||
		strings.Contains(out, "f000.bin") || !strings.Contains(out, "would write") {
		t.Errorf("restore --dry-run: exit %d, %q", code, out)
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("a dry run wrote %d entries into the target", len(entries))
	}
	if code, _, _ := haven(t, "restore", p2, "--target", dst, "--include", "*.bin", "--exclude", "f000.bin", "--wait"); code != 0 {
		t.Fatalf("restore --include --exclude: exit %d", code)
	}
	var restored []string
	filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			restored = append(restored, filepath.Base(p))
		}
		return nil
	})
	if strings.Join(restored, ",") != "f002.bin" {
		t.Errorf("restore --include *.bin --exclude f000.bin wrote %v", restored)
	}
	if code, _, errOut := haven(t, "restore", p2, "--include", "[bad", "--dry-run"); code != 1 || !strings.Contains(errOut, "--include") {
		t.Errorf("restore with a bad glob: exit %d, %q, want the flag named", code, errOut)
	}
}
