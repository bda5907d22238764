package fsstore

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/storetest"
)

// TestConformanceDirect runs the suite with every object, down to empty
// ones, written with direct I/O (a file that is only a partial block, or
// only whole blocks, or nothing).
func TestConformanceDirect(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newStore(t)
		s.direct.minSize = 0
		return s
	})
}

// TestConformanceDirectRefused runs the suite on a store whose filesystem
// refuses O_DIRECT, as tmpfs and some network filesystems do: every object
// is written through the page cache instead.
func TestConformanceDirectRefused(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newStore(t)
		s.direct.minSize = 0
		s.direct.set = func(*os.File, bool) error { return syscall.EINVAL }
		t.Cleanup(func() {
			if n := s.directBytes.Load(); n != 0 {
				t.Errorf("%d bytes were written directly although the filesystem refused direct I/O", n)
			}
		})
		return s
	})
}

// wantDirect is how many bytes of an object of size bytes go to the disk
// directly: its whole blocks on Linux, nothing elsewhere.
func wantDirect(size int) int64 {
	if runtime.GOOS != "linux" {
		return 0
	}
	return int64(size - size%store.DirectIOAlignment)
}

// TestDirectWrites puts objects of awkward sizes from every kind of
// source the direct path handles differently, and checks each comes back
// whole, that their whole blocks were written directly, and that no
// temporary file is left.
func TestDirectWrites(t *testing.T) {
	aligned := store.AlignedBytes(20<<20 + store.DirectIOAlignment + 1)
	copy(aligned, storetest.Data(9, len(aligned)))
	for _, tc := range []struct {
		name string
		size int
		// reader returns the source of data, data being size bytes.
		reader func(data []byte) io.Reader
		// offset is where data starts in aligned memory.
		offset int
	}{
		{name: "aligned memory, whole blocks", size: 16 << 20, reader: func(d []byte) io.Reader { return bytes.NewReader(d) }},
		{name: "aligned memory, a partial last block", size: 20<<20 + 123, reader: func(d []byte) io.Reader { return bytes.NewReader(d) }},
		{name: "unaligned memory", size: 20<<20 + 5, offset: 1, reader: func(d []byte) io.Reader { return bytes.NewReader(d) }},
		{name: "a stream", size: 20<<20 + 4097, reader: func(d []byte) io.Reader { return plainReader{bytes.NewReader(d)} }},
		{name: "a reader holding more than the object", size: 3<<20 + 1, reader: func(d []byte) io.Reader { return bytes.NewReader(d[:len(d)+10]) }},
		{name: "just over the direct threshold", size: directMinSize + 1, reader: func(d []byte) io.Reader { return bytes.NewReader(d) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			data := aligned[tc.offset : tc.offset+tc.size]
			name := "packs/" + storetest.ID("5e", uint64(tc.size))
			if err := s.Put(t.Context(), name, tc.reader(data), int64(len(data)), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := storetest.Get(t, s, name, 0, -1); !bytes.Equal(got, data) {
				t.Fatalf("the object came back different (%d bytes, want %d)", len(got), len(data))
			}
			if got, want := s.directBytes.Load(), wantDirect(len(data)); got != want {
				t.Fatalf("%d bytes written directly, want %d", got, want)
			}
			if got := files(t, s.Root()); !slices.Equal(got, []string{"packs/5e/" + name[len("packs/"):]}) {
				t.Fatalf("files after the Put: %q", got)
			}
		})
	}
}

// TestDirectRefusedByWrite covers a filesystem that takes O_DIRECT but
// refuses the writes (EINVAL, an alignment it does not accept): the Put
// goes on through the page cache. Unaligned memory with the alignment
// check switched off makes the kernel refuse for real.
func TestDirectRefusedByWrite(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("direct I/O is Linux only; elsewhere the conformance suite covers the page-cache path")
	}
	s := newStore(t)
	s.direct.align = 1
	buf := store.AlignedBytes(4<<20 + 1)
	copy(buf, storetest.Data(11, len(buf)))
	data := buf[1:]
	name := "packs/" + storetest.ID("71", 11)
	if err := s.Put(t.Context(), name, bytes.NewReader(data), int64(len(data)), store.PutOptions{}); err != nil {
		t.Fatalf("Put when the filesystem refuses the direct write: %v", err)
	}
	if got := storetest.Get(t, s, name, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("the object came back different (%d bytes, want %d)", len(got), len(data))
	}
	if n := s.directBytes.Load(); n != 0 {
		t.Fatalf("%d bytes counted as written directly; the kernel should have refused them", n)
	}
}

// plainReader hides every method but Read, as a network stream would.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

const killedPutRootEnv = "HAVEN_FSSTORE_KILLED_PUT_ROOT"

// TestKilledPut kills (SIGKILL) a process in the middle of two Puts, one
// of a new object and one replacing an object, each having written 8 MiB
// of 20: afterwards the new object does not exist and the old one is
// whole, on the direct path and on the page-cache path.
func TestKilledPut(t *testing.T) {
	if root := os.Getenv(killedPutRootEnv); root != "" {
		killedPutChild(t, root)
		return
	}
	if runtime.GOOS == "windows" {
		t.Skip("needs a process to be killed mid-write with SIGKILL")
	}
	for _, mode := range []string{"direct", "buffered"} {
		t.Run(mode, func(t *testing.T) {
			s := newStore(t)
			storetest.Put(t, s, killedPutOld, []byte("old"))
			cmd := exec.Command(os.Args[0], "-test.run=^TestKilledPut$", "-test.count=1")
			cmd.Env = append(os.Environ(), killedPutRootEnv+"="+s.Root(), "HAVEN_FSSTORE_KILLED_PUT_MODE="+mode)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := make(chan error, 1)
			go func() {
				sc := bufio.NewScanner(out)
				n := 0
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "halfway") {
						if n++; n == 2 {
							ready <- nil
							return
						}
					}
				}
				ready <- fmt.Errorf("the child ended before both Puts were halfway: %v", sc.Err())
			}()
			select {
			case err = <-ready:
			case <-time.After(2 * time.Minute):
				err = fmt.Errorf("the child did not get halfway in 2 minutes")
			}
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if err != nil {
				t.Fatal(err)
			}
			s, err = New(s.Root())
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Stat(t.Context(), killedPutNew)
			storetest.WantNotFound(t, "Stat of a new object whose Put was killed", err)
			if got := storetest.Get(t, s, killedPutOld, 0, -1); string(got) != "old" {
				t.Fatalf("the object whose replacement was killed reads %d bytes, want the old 3", len(got))
			}
			if got := storetest.Names(t, s, ""); !slices.Equal(got, []string{killedPutOld}) {
				t.Fatalf("List after the killed Puts = %q", got)
			}
			// The temporary files hold what was written, which shows the
			// process really died mid-write.
			var partial int64
			_ = filepath.WalkDir(s.Root(), func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), tempPrefix) {
					if fi, err := d.Info(); err == nil {
						partial += fi.Size()
					}
				}
				return nil
			})
			if partial < 2*(killedPutHalf-stageSize) {
				t.Fatalf("the killed Puts left %d bytes in temporary files, want at least %d", partial, 2*(killedPutHalf-stageSize))
			}
		})
	}
}

var (
	killedPutOld = "packs/" + storetest.ID("0d", 1)
	killedPutNew = "packs/" + storetest.ID("0e", 2)
)

const killedPutHalf = 8 << 20

// killedPutChild runs in the child process of TestKilledPut: two Puts of
// 20 MiB whose sources stop for good after 8 MiB, saying so on stdout.
func killedPutChild(t *testing.T, root string) {
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("HAVEN_FSSTORE_KILLED_PUT_MODE") == "buffered" {
		s.direct.minSize = -1
	}
	for _, name := range []string{killedPutOld, killedPutNew} {
		go func() {
			src := &stallingReader{r: bytes.NewReader(storetest.Data(3, 20<<20)), left: killedPutHalf, name: name}
			err := s.Put(t.Context(), name, src, 20<<20, store.PutOptions{})
			fmt.Printf("the Put of %s returned: %v\n", name, err)
		}()
	}
	time.Sleep(time.Hour)
}

// stallingReader yields left bytes of r, then announces it on stdout and
// blocks until the process is killed.
type stallingReader struct {
	r    io.Reader
	left int
	name string
}

func (sr *stallingReader) Read(p []byte) (int, error) {
	if sr.left == 0 {
		fmt.Printf("halfway %s\n", sr.name)
		time.Sleep(time.Hour)
	}
	n, err := sr.r.Read(p[:min(len(p), sr.left)])
	sr.left -= n
	return n, err
}
