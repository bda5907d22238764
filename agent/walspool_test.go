package agent

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeDataDir is a data directory with only a control file naming
// system id 7, and a WAL file in pg_wal.
func fakeDataDir(t *testing.T, wal []byte) (dataDir, name string) {
	t.Helper()
	dataDir = t.TempDir()
	control := make([]byte, 8192)
	binary.NativeEndian.PutUint64(control, 7)
	for _, d := range []string{"global", "pg_wal"} {
		if err := os.Mkdir(filepath.Join(dataDir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	name = "000000010000000000000003"
	for path, data := range map[string][]byte{"global/pg_control": control, "pg_wal/" + name: wal} {
		if err := os.WriteFile(filepath.Join(dataDir, path), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dataDir, name
}

// TestWALPushIsSafeUnderRepeatsAndConcurrency: archive_command may run
// twice for one file, or in parallel; the spool ends with the file once,
// whole, and no temporary files. The same name with other content is
// refused and leaves the spooled file as it was; without a spool the push
// fails and says why.
func TestWALPushIsSafeUnderRepeatsAndConcurrency(t *testing.T) {
	wal := bytes.Repeat([]byte("wal!"), 1<<18)
	dataDir, name := fakeDataDir(t, wal)
	state := t.TempDir()
	if err := WALPush(state, dataDir, "pg_wal/"+name); err == nil || !strings.Contains(err.Error(), "first backup") {
		t.Fatalf("push before the spool exists: %v, want it refused, saying the first backup makes it", err)
	}
	spool := walSpoolDir(state, "7")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- WALPush(state, dataDir, "pg_wal/"+name) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent push: %v", err)
		}
	}
	if err := WALPush(state, dataDir, "pg_wal/"+name); err != nil {
		t.Errorf("repeated push of the same file: %v", err)
	}
	entries, _ := os.ReadDir(spool)
	if len(entries) != 1 || entries[0].Name() != name {
		t.Fatalf("spool holds %v, want only %s", entries, name)
	}
	if got, _ := os.ReadFile(filepath.Join(spool, name)); !bytes.Equal(got, wal) {
		t.Fatal("the spooled file is not the WAL file")
	}
	if err := os.WriteFile(filepath.Join(dataDir, "pg_wal", name), []byte("other"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WALPush(state, dataDir, "pg_wal/"+name); err == nil || !strings.Contains(err.Error(), "other content") {
		t.Errorf("push of other content under the same name: %v, want it refused", err)
	}
	if got, _ := os.ReadFile(filepath.Join(spool, name)); !bytes.Equal(got, wal) {
		t.Error("a refused push changed the spooled file")
	}
}
