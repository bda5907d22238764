package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	smb2 "github.com/cloudsoda/go-smb2"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/nas"
	"github.com/havenbackup/terraform-provider-haven/engine/nas/smb"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/fsstore"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// nasProfile is the -nas-profile flag: a directory for CPU profiles of
// one extra, untimed Haven full backup, unchanged re-backup and restore.
var nasProfile string

// nasRounds is how many times each operation runs; the median is judged.
const nasRounds = 3

// nasIO is the size of the protocol limits' reads and writes: go-smb2
// sends at most 1 MiB in one request (its winMaxPayloadSize), so larger
// buffers only split into sequential requests of that size.
const nasIO = 1 << 20

// nasBench is make bench-nas (issue 16): a make-dataset tree backed up
// from and restored into Samba on loopback, every operation whole (from
// connecting to disconnecting) and run nasRounds times, the rounds
// interleaved so that the machine's other load falls on every measure
// alike, and the median judged against the protocol limit measured in
// the same run: the same tree copied through engine/nas/smb with no Haven
// work, nas.DefaultReaders files at once and 1 MiB requests. The backup
// reads from the NAS, so its limit is the download; the restore writes,
// so its limit is the upload. smbclient's tar mode, one process reading
// or writing one file at a time, is printed beside them for reference.
// smbd, PostgreSQL and smbclient run on the same cores as Haven: the CPU
// each took is printed with each figure.
func nasBench(ctx context.Context, pool *pgxpool.Pool, state, dataset string) error {
	if dataset == "" {
		return errors.New("nas: give -dataset, a make-dataset directory")
	}
	smbclient, err := exec.LookPath("smbclient")
	if err != nil {
		return errors.New("smbclient is not installed (smbclient's tar mode is the reference): apt-get install smbclient")
	}
	mk, err := keys.LoadOrCreate(filepath.Join(state, "master.key"))
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "bench-nas: starting Samba")
	s, stop, err := testparts.RunSamba()
	if err != nil {
		return err
	}
	defer stop()
	// A restore account that sets owners, as a NAS restore's should (see
	// docs/guides/nas.md).
	s.GrantPrivilege("SeRestorePrivilege")
	b := &nasBenchRun{s: s, pool: pool, mk: mk, state: state, smbclient: smbclient,
		data: s.Dir(testparts.SambaShareData), other: s.Dir(testparts.SambaShareOther)}
	fmt.Fprintf(os.Stderr, "bench-nas: copying %s into the %s share\n", dataset, testparts.SambaShareData)
	if out, err := exec.CommandContext(ctx, "cp", "-a", dataset+"/.", b.data+"/").CombinedOutput(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	s.Adopt(testparts.SambaShareData)
	if b.tree, err = localTree(b.data); err != nil {
		return err
	}
	if b.smbdPgid = childPgid("smbd"); b.smbdPgid == 0 {
		return errors.New("nas: smbd is not among this process's children")
	}

	if b.metas, err = b.listMetas(ctx); err != nil {
		return err
	}
	ops := []string{"upload", "upload-meta", "list", "download", "full", "unchanged", "restore", "tar-c", "tar-x"}
	runs := map[string][]nasRun{}
	for round := range nasRounds {
		fmt.Fprintf(os.Stderr, "bench-nas: round %d of %d\n", round+1, nasRounds)
		r, err := b.freshRepo(ctx, round)
		if err != nil {
			return err
		}
		var full format.ID
		for _, op := range ops {
			var run nasRun
			var err error
			switch op {
			case "upload":
				run, err = b.intoOther(op, func() (nasRun, error) { return b.uploadLimit(ctx) })
			case "upload-meta":
				run, err = b.intoOther(op, func() (nasRun, error) { return b.metaUploadLimit(ctx) })
			case "list":
				run, err = b.timed(func() (nasRun, error) { return b.walkLimit(ctx, false) })
			case "download":
				run, err = b.timed(func() (nasRun, error) { return b.walkLimit(ctx, true) })
			case "full":
				run, err = b.timed(func() (nasRun, error) {
					var run nasRun
					full, run, err = b.capture(ctx, r, format.ID{}, "", fmt.Sprint("full-", round))
					return run, err
				})
			case "unchanged":
				run, err = b.timed(func() (nasRun, error) {
					_, run, err := b.capture(ctx, r, full, fmt.Sprint("full-", round), fmt.Sprint("unchanged-", round))
					return run, err
				})
			case "restore":
				run, err = b.intoOther(op, func() (nasRun, error) { return b.restore(ctx, r, full) })
			case "tar-c":
				run, err = b.timed(func() (nasRun, error) { return b.tar(ctx, testparts.SambaShareData, "-Tc") })
			case "tar-x":
				run, err = b.intoOther(op, func() (nasRun, error) { return b.tar(ctx, testparts.SambaShareOther, "-Tx") })
			}
			if err != nil {
				return fmt.Errorf("%s, round %d: %w\nsmbd's log:\n%s", op, round+1, err, s.LogTail())
			}
			fmt.Fprintf(os.Stderr, "bench-nas:   %-9s %6.2f s", op, run.secs)
			if run.retries > 0 {
				fmt.Fprintf(os.Stderr, " (%d requests sent again for go-smb2's credit bug)", run.retries)
			}
			if run.missing != 0 || run.failed > 0 {
				fmt.Fprintf(os.Stderr, " (%d files left out, %d entries failed)", run.missing, run.failed)
			}
			fmt.Fprintln(os.Stderr)
			runs[op] = append(runs[op], run)
		}
		if nasProfile != "" && round == nasRounds-1 {
			if err := b.profile(ctx, r, full); err != nil {
				return err
			}
		}
		// The packs of this round's repository are not needed again.
		if err := os.RemoveAll(b.storeDir(round)); err != nil {
			return err
		}
		os.Remove(b.tarPath())
	}
	b.print(runs)
	return nil
}

type nasBenchRun struct {
	s           *testparts.Samba
	pool        *pgxpool.Pool
	mk          *keys.MasterKey
	state       string
	smbclient   string
	data, other string
	tree        treeSize
	smbdPgid    int
	// metas is every entry's metadata in the data share, by path, for
	// metaUploadLimit.
	metas map[string]nas.Info
}

// nasRun is one timed operation: its wall time, the CPU seconds this
// process and its helpers (smbd, PostgreSQL, smbclient) spent meanwhile,
// and what the operation reported.
type nasRun struct {
	secs                       float64
	self, smbd, pg, client     float64
	files, bytes, reused       int64
	newBytes, stored, warnings int64
	firstWarning               string
	reconnects                 int64
	// retries counts the limits' requests refused for go-smb2's credit
	// bug (see creditRetry) and sent again; missing the files a capture
	// left out and failed the entries a restore could not write.
	retries, missing, failed int64
}

type treeSize struct{ files, dirs, bytes int64 }

func (b *nasBenchRun) dial(ctx context.Context, share string) (nas.Share, error) {
	return smb.Dial(ctx, smb.Config{Address: b.s.Address, Share: share, User: b.s.User, Password: b.s.Password, Domain: b.s.Workgroup})
}

// intoOther times op, which writes the tree into the emptied other share,
// and checks what landed there (unless entries failed, which the report
// counts instead).
func (b *nasBenchRun) intoOther(op string, write func() (nasRun, error)) (nasRun, error) {
	if err := b.empty(b.other); err != nil {
		return nasRun{}, err
	}
	run, err := b.timed(write)
	if err == nil && run.failed == 0 {
		err = b.check(b.other, op)
	}
	return run, err
}

// timed runs op after a sync (so no earlier operation's writes drain
// during it), measuring its wall time and everyone's CPU time.
func (b *nasBenchRun) timed(op func() (nasRun, error)) (nasRun, error) {
	syscall.Sync()
	self0, smbd0, pg0 := cpuSeconds(), groupCPU(b.smbdPgid), childrenCPU("postgres")
	start := time.Now()
	run, err := op()
	run.secs = time.Since(start).Seconds()
	run.self, run.smbd, run.pg = cpuSeconds()-self0, groupCPU(b.smbdPgid)-smbd0, childrenCPU("postgres")-pg0
	return run, err
}

// uploadLimit copies the tree under the data share's directory into the
// other share through engine/nas/smb with no Haven work: one session,
// directories made as the walk meets them, nas.DefaultReaders files
// created and written at once in 1 MiB writes.
func (b *nasBenchRun) uploadLimit(ctx context.Context) (nasRun, error) {
	sh, err := b.dial(ctx, testparts.SambaShareOther)
	if err != nil {
		return nasRun{}, err
	}
	defer sh.Close()
	run, err := b.copyUp(ctx, func(ctx context.Context, rel string) error { return sh.Mkdir(ctx, rel) },
		func(ctx context.Context, rel string, buf []byte) (int64, int64, error) {
			var retried int64
			n, err := uploadFile(ctx, sh, filepath.Join(b.data, filepath.FromSlash(rel)), rel, buf, &retried)
			return n, retried, err
		})
	if err != nil {
		return nasRun{}, err
	}
	return run, sh.Close()
}

// copyUp walks the data share's directory, giving each directory to mkdir
// as the walk meets it and each regular file to put, nas.DefaultReaders
// files at once, each put with its own 1 MiB buffer; put returns the
// bytes written and the requests it sent again (creditRetry).
func (b *nasBenchRun) copyUp(ctx context.Context, mkdir func(ctx context.Context, rel string) error,
	put func(ctx context.Context, rel string, buf []byte) (n, retried int64, err error)) (nasRun, error) {
	var run nasRun
	g, gctx := errgroup.WithContext(ctx)
	next := make(chan string)
	g.Go(func() error {
		defer close(next)
		return filepath.WalkDir(b.data, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == b.data {
				return err
			}
			rel, _ := filepath.Rel(b.data, p)
			rel = filepath.ToSlash(rel)
			switch {
			case d.IsDir():
				return mkdir(gctx, rel)
			case d.Type().IsRegular():
				select {
				case next <- rel:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	})
	counts := make([][3]int64, nas.DefaultReaders)
	for w := range nas.DefaultReaders {
		g.Go(func() error {
			buf := make([]byte, nasIO)
			for rel := range next {
				n, retried, err := put(gctx, rel, buf)
				counts[w][2] += retried
				if err != nil {
					return err
				}
				counts[w][0]++
				counts[w][1] += n
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nasRun{}, err
	}
	for _, c := range counts {
		run.files, run.bytes, run.retries = run.files+c[0], run.bytes+c[1], run.retries+c[2]
	}
	return run, nil
}

func uploadFile(ctx context.Context, sh nas.Share, local, rel string, buf []byte, retried *int64) (int64, error) {
	var dst nas.File
	retries, err := creditRetry(func() (err error) { dst, err = sh.Create(ctx, rel); return err })
	*retried += retries
	if err != nil {
		return 0, err
	}
	n, err := copyInto(dst, local, buf)
	if err != nil {
		dst.Close()
		return n, err
	}
	return n, dst.Close()
}

// copyInto writes the local file into dst in writes of len(buf) bytes,
// leaving dst open.
func copyInto(dst nas.File, local string, buf []byte) (int64, error) {
	src, err := os.Open(local)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var off int64
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if _, err := dst.WriteAt(buf[:n], off); err != nil {
				return off, err
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// listMetas lists the data share's tree through engine/nas/smb, as a
// capture does, for every entry's metadata (untimed, once).
func (b *nasBenchRun) listMetas(ctx context.Context) (map[string]nas.Info, error) {
	sh, err := b.dial(ctx, testparts.SambaShareData)
	if err != nil {
		return nil, err
	}
	defer sh.Close()
	metas := map[string]nas.Info{}
	var walk func(dir string) error
	walk = func(dir string) error {
		var infos []nas.Info
		if _, err := creditRetry(func() (err error) { infos, err = sh.ReadDir(ctx, dir); return err }); err != nil {
			return err
		}
		for _, in := range infos {
			p := path.Join(dir, in.Name)
			metas[p] = in
			if in.Type == nas.TypeDir {
				if err := walk(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return metas, walk("")
}

// metaUploadLimit is uploadLimit with what a restore must do and a bare
// copy does not: every entry given the metadata the data share holds for
// it (owner, group, DACL, attributes, times), through the calls Haven's
// restore makes for that (files created with nas.MetaCreator and
// committed; directories kept open from nas.DirMaker's MkdirOpen and given
// theirs at the end, deepest first, nas.DefaultReaders at once), with no
// Haven work: no repository, no decoding, no checks, no descriptor
// inheritance. A restore cannot be faster than this on the same server;
// the bare upload, which sets no metadata, is the yardstick.
func (b *nasBenchRun) metaUploadLimit(ctx context.Context) (nasRun, error) {
	sh, err := b.dial(ctx, testparts.SambaShareOther)
	if err != nil {
		return nasRun{}, err
	}
	defer sh.Close()
	mc, ok1 := sh.(nas.MetaCreator)
	dm, ok2 := sh.(nas.DirMaker)
	if !ok1 || !ok2 {
		return nasRun{}, errors.New("nas: the SMB share makes no metadata handles (nas.MetaCreator, nas.DirMaker)")
	}
	type openDir struct {
		rel string
		dir nas.MetaDir
	}
	var dirs []openDir
	defer func() {
		for _, d := range dirs {
			if d.dir != nil {
				d.dir.Close()
			}
		}
	}()
	run, err := b.copyUp(ctx, func(_ context.Context, rel string) error {
		// The handle keeps the context it was opened with, and outlives
		// the walk's (as a restore's handles do).
		md, err := dm.MkdirOpen(ctx, rel, b.metas[rel].SD)
		if err == nil {
			dirs = append(dirs, openDir{rel: rel, dir: md})
		}
		return err
	}, func(ctx context.Context, rel string, buf []byte) (int64, int64, error) {
		f, err := mc.CreateMeta(ctx, rel, b.metas[rel])
		if err != nil {
			return 0, 0, err
		}
		n, err := copyInto(f, filepath.Join(b.data, filepath.FromSlash(rel)), buf)
		if err != nil {
			f.Close()
			return n, 0, err
		}
		if _, err := f.Commit(); err != nil {
			return n, 0, fmt.Errorf("%s: %w", rel, err)
		}
		return n, 0, nil
	})
	if err != nil {
		return nasRun{}, err
	}
	byDepth := map[int][]int{}
	deepest := 0
	for i, d := range dirs {
		depth := strings.Count(d.rel, "/")
		byDepth[depth] = append(byDepth[depth], i)
		deepest = max(deepest, depth)
	}
	for depth := deepest; depth >= 0; depth-- {
		g, _ := errgroup.WithContext(ctx)
		g.SetLimit(nas.DefaultReaders)
		for _, i := range byDepth[depth] {
			g.Go(func() error {
				d := dirs[i].dir
				dirs[i].dir = nil
				if err := d.SetMetaClose(b.metas[dirs[i].rel]); err != nil {
					return fmt.Errorf("%s: %w", dirs[i].rel, err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nasRun{}, err
		}
	}
	return run, sh.Close()
}

// creditRetry runs a protocol limit's open, create or listing again while
// the server refuses it with STATUS_INVALID_PARAMETER, and says how many
// times it did. That refusal is go-smb2's, not the server's: a query
// (the Stat engine/nas/smb makes after opening a file, a directory
// listing) asks for a 1 MiB answer, 16 credits, and when fewer are left
// (a session holds at most 128, and nas.DefaultReaders transfers of
// 1 MiB in flight take them all) go-smb2 sends it with the credits it
// got and the same 1 MiB, which Samba refuses ("CreditCharge too low").
// The retries are printed with the limits; Haven's own capture and
// restore are not retried, and what they left out is printed.
func creditRetry(op func() error) (int64, error) {
	var retries int64
	for {
		err := op()
		var re *smb2.ResponseError
		if err == nil || !errors.As(err, &re) || re.Code != statusInvalidParameter || retries >= 1000 {
			return retries, err
		}
		retries++
	}
}

// statusInvalidParameter is STATUS_INVALID_PARAMETER (MS-ERREF 2.3).
const statusInvalidParameter = 0xC000000D

// walkLimit walks the data share through engine/nas/smb as a capture
// does (one directory listed at a time, with its entries' descriptors)
// and, when read is set, reads every file as it is met,
// nas.DefaultReaders at once in 1 MiB reads, discarding the bytes.
func (b *nasBenchRun) walkLimit(ctx context.Context, read bool) (nasRun, error) {
	sh, err := b.dial(ctx, testparts.SambaShareData)
	if err != nil {
		return nasRun{}, err
	}
	defer sh.Close()
	var run nasRun
	g, gctx := errgroup.WithContext(ctx)
	next := make(chan string)
	var walk func(dir string) error
	walk = func(dir string) error {
		var infos []nas.Info
		retries, err := creditRetry(func() (err error) { infos, err = sh.ReadDir(gctx, dir); return err })
		run.retries += retries
		if err != nil {
			return err
		}
		for _, in := range infos {
			p := path.Join(dir, in.Name)
			switch in.Type {
			case nas.TypeDir:
				if err := walk(p); err != nil {
					return err
				}
			case nas.TypeFile:
				run.files++
				if !read {
					run.bytes += in.Size
					continue
				}
				select {
				case next <- p:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		}
		return nil
	}
	g.Go(func() error {
		defer close(next)
		return walk("")
	})
	counts := make([][2]int64, nas.DefaultReaders)
	for w := range nas.DefaultReaders {
		g.Go(func() error {
			buf := make([]byte, nasIO)
			for p := range next {
				var f nas.File
				retries, err := creditRetry(func() (err error) { f, err = sh.Open(gctx, p); return err })
				counts[w][1] += retries
				if err != nil {
					return err
				}
				for off := int64(0); ; {
					n, err := f.ReadAt(buf, off)
					off += int64(n)
					counts[w][0] += int64(n)
					if err == io.EOF {
						break
					}
					if err != nil {
						f.Close()
						return err
					}
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nasRun{}, err
	}
	for _, c := range counts {
		run.bytes, run.retries = run.bytes+c[0], run.retries+c[1]
	}
	if run.files != b.tree.files || run.bytes != b.tree.bytes {
		return run, fmt.Errorf("the walk met %d files of %d bytes, the share holds %d of %d", run.files, run.bytes, b.tree.files, b.tree.bytes)
	}
	return run, sh.Close()
}

func (b *nasBenchRun) storeDir(round int) string {
	return filepath.Join(b.state, fmt.Sprint("nas-store-", round))
}

// freshRepo opens an empty repository for a round: its own store and its
// own index in the bench's PostgreSQL.
func (b *nasBenchRun) freshRepo(ctx context.Context, round int) (*repo.Repository, error) {
	dir := b.storeDir(round)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	st, err := fsstore.New(dir)
	if err != nil {
		return nil, err
	}
	return repo.OpenOn(ctx, st, b.pool, fmt.Sprintf("nas-%d-%d", time.Now().UnixNano(), round), b.mk, repo.Options{Uploads: uploads})
}

// capture backs up the data share as Haven does, incremental from parent
// (the root of parentPoint) when it is set, and commits it as point.
func (b *nasBenchRun) capture(ctx context.Context, r *repo.Repository, parent format.ID, parentPoint, point string) (format.ID, nasRun, error) {
	var run nasRun
	sh, err := b.dial(ctx, testparts.SambaShareData)
	if err != nil {
		return format.ID{}, run, err
	}
	defer sh.Close()
	w, err := r.NewWriter(ctx, parentPoint)
	if err != nil {
		return format.ID{}, run, err
	}
	root, st, err := nas.Capture(ctx, w, r, sh, nas.CaptureOptions{Parent: parent, Source: "smb://" + b.s.Address + "/" + testparts.SambaShareData,
		Warn: func(p string, err error) {
			if run.warnings++; run.firstWarning == "" {
				run.firstWarning = fmt.Sprintf("%s: %v", p, err)
			}
		}})
	if err != nil {
		w.Abort(ctx)
		return format.ID{}, run, err
	}
	if err := w.Commit(ctx, point, root); err != nil {
		return format.ID{}, run, err
	}
	ws := w.Stats()
	run.files, run.bytes, run.reused, run.newBytes, run.stored = st.Files, st.Bytes, st.Reused, ws.NewBytes, ws.StoredBytes
	// A file the capture could not read is left out with a warning, as
	// the product does: reported with the figures, not fatal.
	run.missing = b.tree.files - st.Files
	return root, run, sh.Close()
}

// restore restores root into the other share, as Haven restores into
// another share than the point's.
func (b *nasBenchRun) restore(ctx context.Context, r *repo.Repository, root format.ID) (nasRun, error) {
	// Warnings (metadata the share refused) are counted and the first
	// kept: a restore that set no descriptors would be measured doing
	// less than its job.
	var (
		mu       sync.Mutex
		warnings int64
		first    string
	)
	warn := func(p string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if warnings++; first == "" {
			first = fmt.Sprintf("%s: %v", p, err)
		}
	}
	st, err := nas.Restore(ctx, r, root, nas.RestoreOptions{Alternate: true, Warn: warn,
		Dial: func(ctx context.Context) (nas.Share, error) { return b.dial(ctx, testparts.SambaShareOther) }})
	// Restore has returned: nothing warns any more.
	run := nasRun{files: st.Files, bytes: st.Bytes, reconnects: st.Reconnects, failed: int64(len(st.Failed)),
		warnings: warnings, firstWarning: first}
	if errors.Is(err, files.ErrIncomplete) {
		// Entries that failed alone are named, as the product reports
		// them: with the figures, not fatal.
		if len(st.Failed) > 0 {
			run.firstWarning = st.Failed[0]
		}
		err = nil
	}
	return run, err
}

func (b *nasBenchRun) tarPath() string { return filepath.Join(b.state, "nas-smbclient.tar") }

// tar runs smbclient in tar mode on share: -Tc backs the share up into
// a tar file, -Tx restores it.
func (b *nasBenchRun) tar(ctx context.Context, share, mode string) (nasRun, error) {
	auth := filepath.Join(b.state, "nas-smbclient.auth")
	if err := os.WriteFile(auth, []byte(fmt.Sprintf("username = %s\npassword = %s\ndomain = %s\n", b.s.User, b.s.Password, b.s.Workgroup)), 0o600); err != nil {
		return nasRun{}, err
	}
	if mode == "-Tc" {
		os.Remove(b.tarPath())
	}
	cmd := exec.CommandContext(ctx, b.smbclient, "//127.0.0.1/"+share, "-p", strconv.Itoa(b.s.Port), "-A", auth, mode, b.tarPath())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nasRun{}, fmt.Errorf("smbclient %s: %v: %s", mode, err, lastLines(out.String(), 5))
	}
	run := nasRun{client: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()}
	if mode == "-Tc" {
		info, err := os.Stat(b.tarPath())
		if err != nil {
			return run, err
		}
		if info.Size() < b.tree.bytes {
			return run, fmt.Errorf("smbclient -Tc wrote %d bytes, less than the share's %d: %s", info.Size(), b.tree.bytes, lastLines(out.String(), 5))
		}
	}
	return run, nil
}

// profile runs a Haven full backup, an unchanged re-backup and a restore
// once more, untimed, each under a CPU profile written to nasProfile.
func (b *nasBenchRun) profile(ctx context.Context, r *repo.Repository, full format.ID) error {
	if err := os.MkdirAll(nasProfile, 0o755); err != nil {
		return err
	}
	fresh, err := b.freshRepo(ctx, nasRounds)
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.storeDir(nasRounds))
	var root format.ID
	steps := []struct {
		name string
		run  func() error
	}{
		{"full", func() (err error) { root, _, err = b.capture(ctx, fresh, format.ID{}, "", "profiled-full"); return err }},
		{"unchanged", func() error {
			_, _, err := b.capture(ctx, fresh, root, "profiled-full", "profiled-unchanged")
			return err
		}},
		{"restore", func() error { _, err := b.restore(ctx, r, full); return err }},
	}
	for _, s := range steps {
		if s.name == "restore" {
			// The other share is emptied outside the profile.
			if err := b.empty(b.other); err != nil {
				return err
			}
		}
		syscall.Sync()
		p := filepath.Join(nasProfile, "nas-"+s.name+".pprof")
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("-nas-profile: %w (is -cpuprofile set too?)", err)
		}
		err = s.run()
		pprof.StopCPUProfile()
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench-nas: CPU profile of the %s in %s\n", s.name, p)
	}
	return nil
}

// empty removes everything inside dir (a share's directory), then syncs.
func (b *nasBenchRun) empty(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	syscall.Sync()
	return nil
}

// check compares what landed in a share's directory with the data
// share's tree.
func (b *nasBenchRun) check(dir, op string) error {
	got, err := localTree(dir)
	if err != nil {
		return err
	}
	if got != b.tree {
		return fmt.Errorf("%s left %d files, %d directories, %d bytes; the data share holds %d, %d, %d",
			op, got.files, got.dirs, got.bytes, b.tree.files, b.tree.dirs, b.tree.bytes)
	}
	return nil
}

// localTree counts the regular files, directories (not the root) and
// file bytes under dir.
func localTree(dir string) (treeSize, error) {
	var t treeSize
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case p == dir:
		case d.IsDir():
			t.dirs++
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			t.files++
			t.bytes += info.Size()
		}
		return nil
	})
	return t, err
}

// procStat is one process's line of /proc/PID/stat: its parent, process
// group, name, and CPU time with that of its waited-for children.
type procStat struct {
	pid, ppid, pgid int
	comm            string
	cpu             float64
}

// clockTicks is USER_HZ, the unit of /proc's times (100 on Linux).
const clockTicks = 100

func procStats() []procStat {
	dirs, _ := os.ReadDir("/proc")
	var out []procStat
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		// After the name: state ppid pgrp session tty_nr tpgid flags
		// minflt cminflt majflt cmajflt utime stime cutime cstime.
		f := strings.Fields(s[end+1:])
		if len(f) < 15 {
			continue
		}
		num := func(i int) int { v, _ := strconv.Atoi(f[i]); return v }
		out = append(out, procStat{pid: pid, ppid: num(1), pgid: num(2), comm: s[open+1 : end],
			cpu: float64(num(11)+num(12)+num(13)+num(14)) / clockTicks})
	}
	return out
}

// childPgid is the process group of this process's child named name
// (smbd leads its own group), 0 if there is none.
func childPgid(name string) int {
	for _, p := range procStats() {
		if p.ppid == os.Getpid() && p.comm == name {
			return p.pgid
		}
	}
	return 0
}

// groupCPU is the CPU time of a process group's processes so far, with
// their reaped children's.
func groupCPU(pgid int) float64 {
	var t float64
	for _, p := range procStats() {
		if p.pgid == pgid {
			t += p.cpu
		}
	}
	return t
}

// childrenCPU is the CPU time so far of this process's children named
// name and everything below them (the embedded PostgreSQL).
func childrenCPU(name string) float64 {
	all := procStats()
	under := map[int]bool{}
	for _, p := range all {
		if p.ppid == os.Getpid() && p.comm == name {
			under[p.pid] = true
		}
	}
	var t float64
	for grew := true; grew; {
		grew = false
		for _, p := range all {
			if under[p.ppid] && !under[p.pid] {
				under[p.pid], grew = true, true
			}
		}
	}
	for _, p := range all {
		if under[p.pid] {
			t += p.cpu
		}
	}
	return t
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// median is the run of median wall time.
func median(runs []nasRun) nasRun {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b nasRun) int {
		switch {
		case a.secs < b.secs:
			return -1
		case a.secs > b.secs:
			return 1
		}
		return 0
	})
	return sorted[len(sorted)/2]
}

func (b *nasBenchRun) print(runs map[string][]nasRun) {
	mbps := func(r nasRun) float64 { return mb(b.tree.bytes) / r.secs }
	all := func(op string) string {
		var s []string
		for _, r := range runs[op] {
			s = append(s, fmt.Sprintf("%.2f", r.secs))
		}
		return strings.Join(s, ", ")
	}
	cpu := func(r nasRun) string {
		s := fmt.Sprintf("CPU s: bench %.1f, smbd %.1f", r.self, r.smbd)
		if r.pg >= 0.05 {
			s += fmt.Sprintf(", postgres %.1f", r.pg)
		}
		if r.client > 0 {
			s += fmt.Sprintf(", smbclient %.1f", r.client)
		}
		return s
	}
	sum := func(op string, field func(nasRun) int64) (n int64) {
		for _, r := range runs[op] {
			n += field(r)
		}
		return n
	}
	retried := func(op string) string {
		n := sum(op, func(r nasRun) int64 { return r.retries })
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("; %d requests over %d runs sent again for go-smb2's credit bug", n, len(runs[op]))
	}
	up, upMeta, list, down := median(runs["upload"]), median(runs["upload-meta"]), median(runs["list"]), median(runs["download"])
	full, again, rest := median(runs["full"]), median(runs["unchanged"]), median(runs["restore"])
	tarc, tarx := median(runs["tar-c"]), median(runs["tar-x"])

	fmt.Printf("\nNAS share over SMB, Samba %s on loopback, make-dataset --scale 1 (files/ and vm/disk0.img)\n", sambaVersion())
	fmt.Printf("tree: %d files, %d directories, %d bytes (%.1f MB); median of %d interleaved runs (all runs in brackets), whole operations from connect to disconnect\n",
		b.tree.files, b.tree.dirs, b.tree.bytes, mb(b.tree.bytes), nasRounds)
	fmt.Printf("protocol limits: the same tree through engine/nas/smb (go-smb2) with no Haven work, one session, %d files at once (nas.DefaultReaders), 1 MiB requests\n", nas.DefaultReaders)
	hdr := fmt.Sprintf("%-44s %9s %9s %8s %8s  %s", "measure", "value", "limit", "% of it", "target", "judged against; notes")
	fmt.Println(hdr)
	line := func(name, val, limit string, pct float64, target, notes string) {
		p := ""
		if pct > 0 {
			p = fmt.Sprintf("%.0f%%", pct)
		}
		fmt.Printf("%-44s %9s %9s %8s %8s  %s\n", name, val, limit, p, target, notes)
	}
	f0 := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	f2 := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	line("limit: upload, mkdir + create + write (MB/s)", f0(mbps(up)), "", 0, "", fmt.Sprintf("%.2f s [%s]; %s%s", up.secs, all("upload"), cpu(up), retried("upload")))
	line("limit: upload with metadata (MB/s)", f0(mbps(upMeta)), f0(mbps(up)), 100*mbps(upMeta)/mbps(up), "", fmt.Sprintf("%.2f s [%s]; each entry also given its owner, DACL, attributes and times as a restore does; %s", upMeta.secs, all("upload-meta"), cpu(upMeta)))
	line("limit: download, list + read (MB/s)", f0(mbps(down)), "", 0, "", fmt.Sprintf("%.2f s [%s]; %s%s", down.secs, all("download"), cpu(down), retried("download")))
	line("limit: list the tree alone (s)", f2(list.secs), "", 0, "", fmt.Sprintf("[%s]; one directory at a time with descriptors, as a capture lists; %s%s", all("list"), cpu(list), retried("list")))
	fullPct, restPct := 100*mbps(full)/mbps(down), 100*mbps(rest)/mbps(up)
	line("Haven full backup (MB/s)", f0(mbps(full)), f0(mbps(down)), fullPct, ">= 80%", "the download limit; "+cpu(full))
	line("  time (s)", f2(full.secs), f2(down.secs), 0, "", fmt.Sprintf("[%s]; %.1f MB new, %.1f MB stored, fresh repository each run", all("full"), mb(full.newBytes), mb(full.stored)))
	line("Haven unchanged re-backup (s)", f2(again.secs), f2(list.secs), 100*list.secs/again.secs, "", fmt.Sprintf("listing the tree alone (its time over this one); [%s]; %d of %d files reused; %s",
		all("unchanged"), again.reused, again.files, cpu(again)))
	line("Haven restore into another share (MB/s)", f0(mbps(rest)), f0(mbps(up)), restPct, ">= 80%", "the upload limit; "+cpu(rest))
	line("  time (s)", f2(rest.secs), f2(up.secs), 0, "", fmt.Sprintf("[%s]; %d files, %d reconnects; other share emptied before each run", all("restore"), rest.files, rest.reconnects))
	line("  vs the upload with metadata (MB/s)", f0(mbps(rest)), f0(mbps(upMeta)), 100*mbps(rest)/mbps(upMeta), "", "the same calls with no Haven work: the most a restore can reach on this server")
	line("smbclient -Tc, tar backup (MB/s)", f0(mbps(tarc)), f0(mbps(down)), 100*mbps(tarc)/mbps(down), "", fmt.Sprintf("reference; %.2f s [%s]; %s", tarc.secs, all("tar-c"), cpu(tarc)))
	line("smbclient -Tx, tar restore (MB/s)", f0(mbps(tarx)), f0(mbps(up)), 100*mbps(tarx)/mbps(up), "", fmt.Sprintf("reference; %.2f s [%s]; %s", tarx.secs, all("tar-x"), cpu(tarx)))
	line("Haven full backup vs smbclient -Tc (s)", f2(full.secs), f2(tarc.secs), 100*tarc.secs/full.secs, "", "smbclient's time over Haven's (no ACLs, no dedup, no encryption in a tar)")
	line("Haven restore vs smbclient -Tx (s)", f2(rest.secs), f2(tarx.secs), 100*tarx.secs/rest.secs, "", "smbclient's time over Haven's")
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		line("peak RSS of haven-bench (MiB)", f0(float64(ru.Maxrss)/1024), "", 0, "", fmt.Sprintf("the whole process (limits, captures, restores); peak Go heap %.0f MiB", phaseHeap.MiB()))
	}
	for _, op := range []string{"full", "unchanged"} {
		for i, r := range runs[op] {
			if r.warnings > 1 || r.missing != 0 || (r.warnings == 1 && !strings.Contains(r.firstWarning, "SeSecurityPrivilege")) {
				fmt.Printf("Haven %s backup, run %d: %d warnings, %d files of the share left out; the first warning: %s\n", op, i+1, r.warnings, r.missing, r.firstWarning)
			}
		}
	}
	for i, r := range runs["restore"] {
		if r.failed > 0 || r.warnings > 0 {
			fmt.Printf("Haven restore, run %d: %d entries failed, %d warnings, the first: %s\n", i+1, r.failed, r.warnings, r.firstWarning)
		}
	}
	if full.warnings > 0 {
		fmt.Printf("capture warning of every full backup: %s\n", full.firstWarning)
	}
	met := func(pct float64) string {
		if pct >= 80 {
			return "met"
		}
		return "NOT met"
	}
	fmt.Printf("target: at least 80%% of the protocol limit: full backup %.0f%% of the download limit (%s), restore %.0f%% of the upload limit (%s)\n",
		fullPct, met(fullPct), restPct, met(restPct))
}

func sambaVersion() string {
	smbd, err := exec.LookPath("smbd")
	if err != nil {
		smbd = "/usr/sbin/smbd"
	}
	out, err := exec.Command(smbd, "--version").Output()
	if err != nil {
		return "(smbd --version failed)"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "Version ")
}
