package nas_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudsoda/sddl"
	"golang.org/x/time/rate"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/nas"
	"github.com/havenbackup/terraform-provider-haven/engine/nas/smb"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopSharedPostgres()
	os.Exit(code)
}

func smbDialer(s *testparts.Samba, share string) nas.Dialer {
	return func(ctx context.Context) (nas.Share, error) {
		return smb.Dial(ctx, smb.Config{Address: s.Address, Share: share, User: s.User, Password: s.Password, Domain: s.Workgroup})
	}
}

func dial(t *testing.T, d nas.Dialer) nas.Share {
	t.Helper()
	sh, err := d(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Close() })
	return sh
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// put writes a file through the share.
func put(t *testing.T, sh nas.Share, p string, data []byte) {
	t.Helper()
	ctx := context.Background()
	f, err := sh.Create(ctx, p)
	must(t, err)
	if len(data) > 0 {
		_, err = f.WriteAt(data, 0)
		must(t, err)
	}
	must(t, f.Close())
}

func random(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e37))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// entry is what a test compares of one entry of a share, read back through
// its protocol.
type entry struct {
	typ     string
	sum     [32]byte
	size    int64
	attrs   uint32
	btimeNs int64
	mtimeNs int64
	sd      string // SDDL
	mode    uint32
	uid     uint32
	gid     uint32
	target  string
}

// snapshot reads a share's tree under dir through the protocol, keyed by
// path relative to dir. Haven's temporary files must not be there.
func snapshot(t *testing.T, sh nas.Share, dir string) map[string]entry {
	t.Helper()
	ctx := context.Background()
	out := map[string]entry{}
	var walk func(d, rel string)
	walk = func(d, rel string) {
		infos, err := sh.ReadDir(ctx, d)
		must(t, err)
		for _, in := range infos {
			p, r := path.Join(d, in.Name), path.Join(rel, in.Name)
			if strings.HasPrefix(in.Name, ".haven-restore-") {
				t.Errorf("%s: a restore's temporary file was left behind", p)
			}
			e := entry{typ: in.Type, size: in.Size, attrs: in.Attrs & nas.AttrsKept, btimeNs: in.BtimeNs, mtimeNs: in.MtimeNs,
				mode: in.Mode, uid: in.UID, gid: in.GID, target: in.Target}
			if in.SD != nil {
				d, err := sddl.FromBinary(in.SD)
				must(t, err)
				e.sd = d.String()
			}
			switch in.Type {
			case nas.TypeFile:
				f, err := sh.Open(ctx, p)
				must(t, err)
				data, err := io.ReadAll(io.NewSectionReader(f, 0, in.Size))
				must(t, err)
				f.Close()
				e.sum = sha256.Sum256(data)
			case nas.TypeDir:
				walk(p, r)
			}
			out[r] = e
		}
	}
	walk(dir, "")
	return out
}

// compare reports every difference between two snapshots; skipDirTimes
// leaves out the times of directories (those of a share's root change
// with every entry made in it).
func compare(t *testing.T, want, got map[string]entry, what func(a, b entry) (string, bool)) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: missing", p)
			continue
		}
		if diff, same := what(w, g); !same {
			t.Errorf("%s: %s", p, diff)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: restored but not in the source", p)
		}
	}
}

// smbSame compares what SMB keeps: content, attributes, creation and
// write times, and the security descriptor.
func smbSame(a, b entry) (string, bool) {
	if a.typ != b.typ || a.sum != b.sum || a.size != b.size {
		return fmt.Sprintf("content: %s %d bytes %x, want %s %d bytes %x", b.typ, b.size, b.sum[:4], a.typ, a.size, a.sum[:4]), false
	}
	if a.attrs != b.attrs {
		return fmt.Sprintf("attributes %#x, want %#x", b.attrs, a.attrs), false
	}
	if a.btimeNs != b.btimeNs || (a.typ == nas.TypeFile && a.mtimeNs != b.mtimeNs) {
		return fmt.Sprintf("times: created %d written %d, want %d and %d", b.btimeNs, b.mtimeNs, a.btimeNs, a.mtimeNs), false
	}
	if a.sd != b.sd {
		return fmt.Sprintf("security descriptor %s, want %s", b.sd, a.sd), false
	}
	return "", true
}

type backupRepo struct {
	env *repotest.Env
	n   int
}

func (b *backupRepo) capture(t *testing.T, sh nas.Share, parent format.ID, opts nas.CaptureOptions) (format.ID, files.CaptureStats, []string) {
	t.Helper()
	ctx := context.Background()
	b.n++
	w, err := b.env.Repo.NewWriter(ctx, "")
	must(t, err)
	var (
		mu       sync.Mutex
		warnings []string
	)
	opts.Parent = parent
	opts.Warn = func(p string, err error) {
		mu.Lock()
		warnings = append(warnings, fmt.Sprintf("%s: %v", p, err))
		mu.Unlock()
	}
	root, st, err := nas.Capture(ctx, w, b.env.Repo, sh, opts)
	if err != nil {
		w.Abort(ctx)
		t.Fatal(err)
	}
	must(t, w.Commit(ctx, fmt.Sprint("p", b.n), root))
	return root, st, warnings
}

// setSD gives p a protected DACL (and, when sacl, an audit ACE) by SDDL.
func setSD(t *testing.T, sh nas.Share, p, text string) {
	t.Helper()
	d, err := sddl.FromString(text)
	must(t, err)
	info, err := sh.Stat(context.Background(), p)
	must(t, err)
	info.SD = d.Binary()
	must(t, sh.SetMeta(context.Background(), p, info))
}

func TestSMBShareBackupIncrementalAndRestore(t *testing.T) {
	s := testparts.StartSamba(t)
	s.GrantPrivilege("SeSecurityPrivilege")
	ctx := context.Background()
	src := dial(t, smbDialer(s, testparts.SambaShareData))
	sid := s.UserSID
	if ok, why := src.SACL(); !ok {
		t.Fatalf("the account holds SeSecurityPrivilege but SACLs are not read: %s", why)
	}
	for _, d := range []string{"proj", "proj/sub", "empty"} {
		must(t, src.Mkdir(ctx, d))
	}
	put(t, src, "proj/a.txt", bytes.Repeat([]byte("haven nas "), 20000))
	put(t, src, "proj/sub/b.bin", random(1, 3<<20))
	put(t, src, "proj/empty.txt", nil)
	old := time.Date(2019, 3, 4, 5, 6, 7, 891234500, time.UTC).UnixNano() // FILETIME ticks are 100 ns
	for name, attrs := range map[string]uint32{
		"proj/hidden.txt": nas.AttrHidden | nas.AttrArchive, "proj/system.txt": nas.AttrSystem,
		"proj/readonly.txt": nas.AttrReadOnly, "proj/plain.txt": 0,
	} {
		put(t, src, name, []byte(name))
		info, err := src.Stat(ctx, name)
		must(t, err)
		info.Attrs, info.SD = attrs, nil
		info.BtimeNs, info.MtimeNs, info.AtimeNs = old, old+1e9, old+2e9
		must(t, src.SetMeta(ctx, name, info))
	}
	put(t, src, "proj/secret.txt", []byte("audited"))
	setSD(t, src, "proj/secret.txt", fmt.Sprintf("O:%sG:%sD:P(A;;FA;;;%s)(A;;0x1200a9;;;WD)S:P(AU;SAFA;FA;;;WD)", sid, sid, sid))
	want := snapshot(t, src, "")
	if !strings.Contains(want["proj/secret.txt"].sd, "S:") {
		t.Fatalf("the SACL was not set: %s", want["proj/secret.txt"].sd)
	}

	b := &backupRepo{env: repotest.New(t, repo.Options{PackSize: 1 << 20})}
	full, st, warnings := b.capture(t, src, format.ID{}, nas.CaptureOptions{Source: "smb://test/data"})
	if len(warnings) > 0 || st.Files != 8 || st.Reused != 0 {
		t.Fatalf("full: %+v, warnings %q", st.Meta, warnings)
	}
	// Unchanged: every file is taken from the parent, unread.
	_, st, _ = b.capture(t, src, full, nas.CaptureOptions{Source: "smb://test/data"})
	if st.Reused != st.Files || st.Files != 8 {
		t.Fatalf("an unchanged share re-read files: %+v", st.Meta)
	}

	// Changes: new content, a new file, and only an attribute.
	put(t, src, "proj/a.txt", bytes.Repeat([]byte("changed! "), 30000))
	put(t, src, "proj/new.txt", []byte("new"))
	info, err := src.Stat(ctx, "proj/sub/b.bin")
	must(t, err)
	info.Attrs, info.SD = nas.AttrHidden, nil
	must(t, src.SetMeta(ctx, "proj/sub/b.bin", info))
	want = snapshot(t, src, "")
	incr, st, _ := b.capture(t, src, full, nas.CaptureOptions{Source: "smb://test/data"})
	if st.Files != 9 || st.Reused != 6 {
		t.Fatalf("the incremental should re-read the changed, the new and the re-attributed file (3 of 9): %+v", st.Meta)
	}

	// Restore to another share, where nothing is: content, attributes,
	// times, owners, groups, SACLs and explicit ACEs come back; what is
	// inherited comes from the new parents (the alternate-location rule),
	// here Samba's CREATOR OWNER ACE, which becomes the owner's own.
	other := dial(t, smbDialer(s, testparts.SambaShareOther))
	setSD(t, other, "", fmt.Sprintf("O:%sG:%sD:P(A;OICI;FA;;;%s)(A;OICI;0x1200a9;;;WD)", sid, sid, sid))
	otherRoot, err := other.Stat(ctx, "")
	must(t, err)
	rs, err := nas.Restore(ctx, b.env.Repo, incr, nas.RestoreOptions{Dial: smbDialer(s, testparts.SambaShareOther), Alternate: true})
	must(t, err)
	// The other share's root keeps its own descriptor: the point's top
	// directory is restored into it, not over it.
	if root, err := other.Stat(ctx, ""); err != nil || !bytes.Equal(root.SD, otherRoot.SD) {
		t.Errorf("the other share's root descriptor changed: %x, was %x (%v)", root.SD, otherRoot.SD, err)
	}
	if rs.Files != 9 || rs.Dirs != 4 {
		t.Fatalf("restored %+v", rs)
	}
	got := snapshot(t, other, "")
	compare(t, want, got, func(a, b entry) (string, bool) {
		a.sd, b.sd = explicitPart(a.sd), explicitPart(b.sd)
		return smbSame(a, b)
	})
	if sd := got["proj/plain.txt"].sd; !strings.Contains(sd, "(A;ID;FA;;;"+sid+")") {
		t.Errorf("at the other share, proj/plain.txt did not inherit its owner's access from CREATOR OWNER: %s", sd)
	}
	if got["proj/secret.txt"].sd != want["proj/secret.txt"].sd {
		t.Errorf("a protected descriptor changed at the other share: %s, want %s", got["proj/secret.txt"].sd, want["proj/secret.txt"].sd)
	}

	// Over the original: damage it, restore with overwrite.
	put(t, src, "proj/a.txt", []byte("damaged"))
	must(t, src.Remove(ctx, "proj/sub/b.bin"))
	setSD(t, src, "proj/secret.txt", fmt.Sprintf("O:%sG:%sD:P(A;;FA;;;%s)", sid, sid, sid))
	rs, err = nas.Restore(ctx, b.env.Repo, incr, nas.RestoreOptions{Dial: smbDialer(s, testparts.SambaShareData)})
	must(t, err)
	if rs.Files != 9 {
		t.Fatalf("restored %+v over the original", rs)
	}
	compare(t, want, snapshot(t, src, ""), smbSame)

	// Skip keeps what is there; rename puts the point's copy beside it.
	put(t, src, "proj/a.txt", []byte("local edit"))
	_, err = nas.Restore(ctx, b.env.Repo, incr, nas.RestoreOptions{Dial: smbDialer(s, testparts.SambaShareData), Conflict: files.ConflictSkip, Paths: []string{"proj/a.txt"}})
	must(t, err)
	if got := snapshot(t, src, "proj")["a.txt"]; got.sum != sha256.Sum256([]byte("local edit")) {
		t.Fatal("the skip policy overwrote a file")
	}
	_, err = nas.Restore(ctx, b.env.Repo, incr, nas.RestoreOptions{Dial: smbDialer(s, testparts.SambaShareData), Conflict: files.ConflictRename, Paths: []string{"proj/a.txt"}})
	must(t, err)
	if got := snapshot(t, src, "proj")["a.txt.restored-1"]; got.sum != want["proj/a.txt"].sum {
		t.Fatal("the rename policy did not restore the point's copy beside the file")
	}
}

// TestSMBRestoreToAnAlternateLocationInherits restores files whose
// directory passed them ACEs into a share whose root passes others: an
// entry's explicit ACEs travel, its old inherited ones give way to what its
// new parent passes down, and a protected DACL is restored as it was.
func TestSMBRestoreToAnAlternateLocationInherits(t *testing.T) {
	s := testparts.StartSamba(t)
	ctx := context.Background()
	src := dial(t, smbDialer(s, testparts.SambaShareData))
	sid := s.UserSID
	const oldParent, denied = "S-1-5-21-1-2-3-777", "S-1-5-21-1-2-3-4242"
	must(t, src.Mkdir(ctx, "src"))
	setSD(t, src, "src", fmt.Sprintf("O:%sG:%sD:PAI(A;OICI;FA;;;%s)(A;OICI;0x1200a9;;;%s)", sid, sid, sid, oldParent))
	put(t, src, "src/explicit.txt", []byte("x"))
	put(t, src, "src/protected.txt", []byte("p"))
	info, err := src.Stat(ctx, "src/explicit.txt")
	must(t, err)
	d, err := sddl.FromBinary(info.SD)
	must(t, err)
	text := d.String()
	if !strings.Contains(text, ";ID;") || !strings.Contains(text, oldParent) {
		t.Fatalf("a file created under src did not inherit its ACEs: %s", text)
	}
	i := strings.Index(text, "D:")
	j := strings.Index(text[i:], "(")
	setSD(t, src, "src/explicit.txt", text[:i+j]+"(D;;WD;;;"+denied+")"+text[i+j:])
	setSD(t, src, "src/protected.txt", fmt.Sprintf("O:%sG:%sD:P(A;;FA;;;%s)(A;ID;FA;;;%s)", sid, sid, sid, oldParent))
	before := snapshot(t, src, "")

	b := &backupRepo{env: repotest.New(t, repo.Options{PackSize: 1 << 20})}
	root, _, _ := b.capture(t, src, format.ID{}, nas.CaptureOptions{Source: "smb://test/data"})
	// The files alone: their directory is made at the destination, where
	// it inherits from the inherit share's root.
	_, err = nas.Restore(ctx, b.env.Repo, root, nas.RestoreOptions{Dial: smbDialer(s, testparts.SambaShareInherit), Target: "restored",
		Alternate: true, Paths: []string{"src/explicit.txt", "src/protected.txt"}})
	must(t, err)
	after := snapshot(t, dial(t, smbDialer(s, testparts.SambaShareInherit)), "restored")

	got := after["src/explicit.txt"].sd
	if !strings.Contains(got, "(D;;WD;;;"+denied+")") {
		t.Errorf("the explicit ACE did not travel: %s", got)
	}
	if strings.Contains(got, oldParent) {
		t.Errorf("the ACE inherited at the old location was kept: %s", got)
	}
	if !strings.Contains(got, "(A;ID;CCSWWPLORCSY;;;WD)") || !strings.Contains(got, "(A;ID;FA;;;"+sid+")") {
		t.Errorf("the new parent's ACEs were not inherited (the inherit share passes %s): %s", s.InheritSDDL, got)
	}
	if g, w := after["src/protected.txt"].sd, before["src/protected.txt"].sd; g != w {
		t.Errorf("a protected DACL changed: %s, want %s", g, w)
	}
	if after["src/explicit.txt"].sum != before["src/explicit.txt"].sum {
		t.Error("content differs")
	}

	// To the same place, the descriptor is restored as it was, inherited
	// ACEs and all.
	must(t, src.Remove(ctx, "src/explicit.txt"))
	_, err = nas.Restore(ctx, b.env.Repo, root, nas.RestoreOptions{Dial: smbDialer(s, testparts.SambaShareData)})
	must(t, err)
	if g, w := snapshot(t, src, "")["src/explicit.txt"].sd, before["src/explicit.txt"].sd; g != w {
		t.Errorf("restored to its place, the descriptor changed: %s, want %s", g, w)
	}
}

// explicitPart is an SDDL descriptor without its inherited ACEs.
func explicitPart(sd string) string {
	var out []string
	for _, part := range strings.Split(sd, "(") {
		if fields := strings.Split(part, ";"); len(fields) > 2 && strings.Contains(fields[1], "ID") {
			continue
		}
		out = append(out, part)
	}
	return strings.Join(out, "(")
}

// TestSMBRestoreSurvivesTheServerGoingAway stops Samba in the middle of a
// restore and starts it again: the restore waits, reconnects, finishes,
// and the share holds exactly the point.
func TestSMBRestoreSurvivesTheServerGoingAway(t *testing.T) {
	s := testparts.StartSamba(t)
	ctx := context.Background()
	src := dial(t, smbDialer(s, testparts.SambaShareData))
	for i := range 40 {
		put(t, src, fmt.Sprintf("f%02d.bin", i), random(uint64(i), 1<<20))
	}
	want := snapshot(t, src, "")
	b := &backupRepo{env: repotest.New(t, repo.Options{PackSize: 1 << 20})}
	root, _, _ := b.capture(t, src, format.ID{}, nas.CaptureOptions{Source: "smb://test/data"})

	var (
		mu       sync.Mutex
		notes    []string
		stopOnce sync.Once
		stopped  = make(chan struct{})
	)
	opts := nas.RestoreOptions{
		Dial: smbDialer(s, testparts.SambaShareOther), Writers: 2, ReconnectFor: time.Minute,
		Warn: func(p string, err error) { mu.Lock(); notes = append(notes, err.Error()); mu.Unlock() },
		Progress: func(n, _ int64) {
			if n == 10 {
				stopOnce.Do(func() { go func() { s.Stop(); close(stopped) }() })
			}
		},
	}
	done := make(chan error, 1)
	var rs nas.RestoreStats
	go func() {
		var err error
		rs, err = nas.Restore(ctx, b.env.Repo, root, opts)
		done <- err
	}()
	<-stopped
	time.Sleep(time.Second) // the writers meet the dead connection
	s.Start()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the restore did not finish after the server came back")
	}
	if rs.Reconnects == 0 || rs.Files != 40 {
		t.Fatalf("restore %+v: no reconnection recorded", rs)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "resumed") {
		t.Errorf("the restore did not say it resumed: %q", notes)
	}
	compare(t, want, snapshot(t, dial(t, smbDialer(s, testparts.SambaShareOther)), ""), func(a, b entry) (string, bool) {
		if a.sum != b.sum || a.size != b.size {
			return "content differs", false
		}
		return "", true
	})

	// A second attempt of the same restore (its job retried) finds every
	// file done.
	rs, err := nas.Restore(ctx, b.env.Repo, root, nas.RestoreOptions{Dial: smbDialer(s, testparts.SambaShareOther), Resume: true})
	must(t, err)
	if rs.Resumed != 40 {
		t.Fatalf("a resumed restore rewrote files: %+v", rs)
	}
}

// TestSMBEntryTheAccountMayNotDescribe: a file whose descriptor the
// account may not read is a warning; its directory and the rest are
// backed up.
func TestSMBEntryTheAccountMayNotDescribe(t *testing.T) {
	s := testparts.StartSamba(t)
	ctx := context.Background()
	src := dial(t, smbDialer(s, testparts.SambaShareData))
	must(t, src.Mkdir(ctx, "d"))
	put(t, src, "d/open.txt", []byte("readable"))
	put(t, src, "d/locked.txt", []byte("not for the proxy"))
	put(t, src, "d/z.txt", []byte("after it"))
	setSD(t, src, "d/locked.txt", "O:S-1-5-21-1-2-3-999G:S-1-5-21-1-2-3-999D:P(A;;FA;;;S-1-5-21-1-2-3-999)")
	b := &backupRepo{env: repotest.New(t, repo.Options{PackSize: 1 << 20})}
	_, st, warnings := b.capture(t, src, format.ID{}, nas.CaptureOptions{Source: "smb://test/data"})
	joined := strings.Join(warnings, "\n")
	if !strings.Contains(joined, "d/locked.txt") {
		t.Fatalf("no warning names the file the account may not describe: %q", warnings)
	}
	if strings.Contains(joined, "d: ") {
		t.Fatalf("the directory was left out for one entry: %q", warnings)
	}
	if st.Files < 2 || st.Dirs != 2 {
		t.Fatalf("the rest of the directory was not backed up: %+v, warnings %q", st.Meta, warnings)
	}
}

// TestCaptureReadLimit: a capture under the policy's bandwidth cap reads
// the share no faster than the cap allows (a lower bound on the time,
// which the limiter guarantees; how fast it runs without one is a
// benchmark's business).
func TestCaptureReadLimit(t *testing.T) {
	s := testparts.StartSamba(t)
	src := dial(t, smbDialer(s, testparts.SambaShareData))
	for i := range 4 {
		put(t, src, fmt.Sprintf("f%d", i), random(uint64(i), 1<<20))
	}
	b := &backupRepo{env: repotest.New(t, repo.Options{PackSize: 1 << 20})}
	const perSecond = 1 << 20
	limit := rate.NewLimiter(perSecond, perSecond/4)
	start := time.Now()
	_, st, _ := b.capture(t, src, format.ID{}, nas.CaptureOptions{Source: "smb://test/data", ReadLimit: limit})
	took := time.Since(start)
	// 4 MiB at 1 MiB/s with a quarter-second burst: at least 3.75 s.
	if st.Bytes != 4<<20 || took < 3700*time.Millisecond {
		t.Fatalf("read %d bytes in %s under a cap of 1 MiB/s", st.Bytes, took)
	}
}
