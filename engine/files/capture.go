package files

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// CaptureOptions configure one backup of a tree.
type CaptureOptions struct {
	// Paths are the absolute paths to back up (directories or files).
	// Entries are named by their path relative to "/", and the directories
	// above each path are recorded too, so a restore can recreate them.
	Paths []string
	// Exclude lists globs (see glob.go: path.Match syntax plus "**" and
	// "{a,b}") matched against each entry's absolute path and against its
	// base name; a matching directory is not descended into.
	Exclude []string
	// Parent is the previous point's root id, for incremental reuse; zero
	// for a full backup.
	Parent format.ID
	// Params are the content-defined chunking parameters.
	Params chunker.Params
	// Workers bounds files read at once; 0 means GOMAXPROCS.
	Workers int
	// Warn receives non-fatal problems (an unreadable file, a file that
	// changed while read); the backup goes on without that file's new state.
	// The path is absolute, as ShowPath writes it.
	Warn func(path string, err error)
	// Progress, if set, is told about every finished entry, and once more
	// when the totals become final; calls never overlap.
	Progress func(CaptureProgress)
	// Totals makes Progress carry the files and bytes to expect. Without
	// a parent, a scan beside the capture walks the same selection doing
	// only lstat, its totals growing until it completes; the capture never
	// waits for it, and a scan still running when the capture ends is
	// stopped. With a parent, the parent point's totals are the estimate
	// and the capture's own walk counts the exact ones: an incremental's
	// walk is most of its work, and a second one beside it would double
	// that (for an unchanged tree, nearly the whole backup).
	Totals bool
	// Confine, if set, refuses include paths outside its roots and skips
	// its denied files and directories wherever the walk meets them.
	Confine *confine.Roots
	// Fuzzy is for files that change while they are read and are made
	// consistent by something else: a database's data files during an
	// online backup, which its WAL repairs on restore. A file that changes
	// while read keeps what was read, under the metadata seen before the
	// read (so the next capture reads it again), and a file or directory
	// that vanishes is left out without a warning.
	Fuzzy bool
	// ReuseBefore, when set, limits reuse from the parent to files whose
	// modification and change times are both before it. A file written
	// again within one tick of the filesystem's clock after the parent
	// read it can keep the timestamps the parent recorded; only files the
	// parent saw as older than its own start, less a margin wider than a
	// tick, are safe to take on metadata alone.
	ReuseBefore time.Time
}

// CaptureStats summarises a capture.
type CaptureStats struct {
	Meta
	Repo repo.WriteStats
}

// job is one walked entry on its way through the workers; results leave in
// walk order, so the manifest is deterministic.
type job struct {
	entry Entry
	prev  *Entry // the same path in the parent point, if it was a file
	src   any    // the tree's handle of the entry (Tree.Walk)
	done  chan struct{}
	skip  bool
}

// Tree is a file tree a capture reads: the host's filesystem (Capture),
// or a NAS share read through its protocol (engine/nas). Everything else
// about a capture (parallel reads, chunking, reuse from the parent point,
// batching, the manifest in walk order, progress) is the same for every
// tree.
type Tree interface {
	// Walk visits the selected entries in walk order (ComparePaths: a
	// directory before its contents, names bytewise), each described in
	// e (Path and the metadata; Size for a regular file), with the tree's
	// own handle src for Open. take says whether a directory's contents
	// follow. An entry the tree cannot describe is reported through warn
	// and left out; an error ends the capture.
	Walk(ctx context.Context, warn func(path string, err error), take func(e Entry, src any) (descend bool, err error)) error
	// Open opens a regular file the walk described, for reading.
	Open(ctx context.Context, e *Entry, src any) (TreeFile, error)
	// Source names the tree in the point's meta.
	Source() string
}

// TreeFile is an open regular file of a Tree.
type TreeFile interface {
	io.ReaderAt
	// Restat describes the file again once it was read, to tell whether
	// it changed meanwhile.
	Restat() (size, mtimeNs, ctimeNs int64, err error)
	Close() error
}

// sparseFile is a TreeFile that can tell its holes from its data; a
// file that cannot is read whole.
type sparseFile interface {
	dataExtents(size int64) ([]extent, error)
}

// Capture backs up a tree into sink and returns the root of its manifest;
// the parent point's manifest (for incremental reuse) is read from src. The
// caller commits the root.
func Capture(ctx context.Context, sink repo.Sink, src repo.Source, opts CaptureOptions) (format.ID, CaptureStats, error) {
	roots, err := includeRoots(opts.Paths)
	if err != nil {
		return format.ID{}, CaptureStats{}, err
	}
	if opts.Confine != nil {
		for _, r := range roots {
			if err := opts.Confine.Check(r); err != nil {
				return format.ID{}, CaptureStats{}, fmt.Errorf("include path: %w", err)
			}
		}
	}
	tree := &osTree{roots: roots, sel: treeSelection{exclude: opts.Exclude, confine: opts.Confine}, names: newNameCache()}
	return CaptureTree(ctx, sink, src, tree, opts)
}

// CaptureTree backs up tree as Capture backs up the host's paths; of the
// options, Paths, Exclude and Confine are the tree's business, and Totals
// without a parent point needs a tree that can count itself (the host's).
func CaptureTree(ctx context.Context, sink repo.Sink, src repo.Source, tree Tree, opts CaptureOptions) (format.ID, CaptureStats, error) {
	if opts.Params == (chunker.Params{}) {
		opts.Params = chunker.DefaultParams
	}
	if err := opts.Params.Validate(); err != nil {
		return format.ID{}, CaptureStats{}, err
	}
	workers := opts.Workers
	if workers <= 0 {
		// Twice the cores: workers spend part of their time waiting on
		// dedup round trips and reads, and the spare ones fill that time.
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	prev, err := openPrevious(ctx, src, opts.Parent)
	if err != nil {
		return format.ID{}, CaptureStats{}, err
	}
	c := &capturer{w: sink, opts: opts, prev: prev, tree: tree}
	mw := repo.NewManifest(sink, "files")
	progress := newProgressTracker(opts)
	if files, bytes, ok := prev.totals(); opts.Totals && ok {
		progress.estimate(files, bytes)
		c.walkTotals = progress
	} else if t, ok := tree.(*osTree); opts.Totals && ok {
		scanCtx, stopScan := context.WithCancel(ctx)
		scanned := make(chan struct{})
		go func() {
			defer close(scanned)
			scanTotals(scanCtx, t.roots, opts, progress)
		}()
		defer func() { stopScan(); <-scanned }()
	} else if opts.Totals {
		c.walkTotals = progress
	}

	g, gctx := errgroup.WithContext(ctx)
	work := make(chan *job, workers*4)
	ordered := make(chan *job, workers*64)
	g.Go(func() error {
		defer close(work)
		defer close(ordered)
		return c.walk(gctx, work, ordered)
	})
	for range workers {
		g.Go(func() error {
			ws := takeWorkerState(opts.Params)
			defer putWorkerState(ws)
			for j := range work {
				if err := c.process(gctx, j, ws); err != nil {
					close(j.done)
					return err
				}
				close(j.done)
			}
			// The manifest may already list the last small files; their
			// chunks are saved before the capture returns, so before any
			// commit.
			return ws.small.flush(gctx, c.w)
		})
	}
	g.Go(func() error {
		for j := range ordered {
			select {
			case <-j.done:
			case <-gctx.Done():
				return gctx.Err()
			}
			if j.skip {
				continue
			}
			c.count(&j.entry)
			if err := mw.Add(gctx, &j.entry); err != nil {
				return err
			}
			progress.done(c.meta.Files, c.meta.Bytes)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return format.ID{}, CaptureStats{}, err
	}
	c.meta.Source = tree.Source()
	c.meta.LinksMarked = true
	c.meta.Warnings = c.warnings.Load()
	c.meta.Reused, c.meta.ReusedBytes = c.reused.Load(), c.reusedBytes.Load()
	id, err := mw.Close(ctx, c.meta)
	if err != nil {
		return format.ID{}, CaptureStats{}, err
	}
	stats := CaptureStats{Meta: c.meta}
	if w, ok := sink.(*repo.Writer); ok {
		stats.Repo = w.Stats()
	}
	return id, stats, nil
}

type capturer struct {
	w        repo.Sink
	opts     CaptureOptions
	prev     *previous
	tree     Tree
	meta     Meta
	warnings atomic.Int64
	reused   atomic.Int64
	// reusedBytes are the reused files' sizes.
	reusedBytes atomic.Int64
	// walkTotals, if set, is given the walk's counts of regular files
	// and their sizes when it has seen the whole selection.
	walkTotals *progressTracker
}

func (c *capturer) warn(path string, err error) {
	if c.opts.Fuzzy && errors.Is(err, fs.ErrNotExist) {
		return // dropped while the capture ran; its WAL says so
	}
	c.warnings.Add(1)
	if c.opts.Warn != nil {
		c.opts.Warn(ShowPath(path), err)
	}
}

func (c *capturer) count(e *Entry) {
	switch e.Type {
	case TypeFile:
		c.meta.Files++
		c.meta.Bytes += e.Size
	case TypeDir:
		c.meta.Dirs++
	}
}

// includeRoots checks and orders the include paths: absolute, existing,
// in walk order, and none inside another.
func includeRoots(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("nothing to back up: no include paths")
	}
	var roots []string
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("include path %q is not absolute", p)
		}
		p = filepath.Clean(p)
		if _, err := os.Lstat(p); err != nil {
			return nil, fmt.Errorf("include path: %w", err)
		}
		roots = append(roots, p)
	}
	slices.SortFunc(roots, func(a, b string) int { return ComparePaths(relName(a), relName(b)) })
	out := roots[:0]
	for _, r := range roots {
		sep := string(filepath.Separator)
		if n := len(out); n > 0 && (r == out[n-1] || strings.HasPrefix(r, strings.TrimSuffix(out[n-1], sep)+sep)) {
			continue // inside the previous root: already covered
		}
		out = append(out, r)
	}
	return out, nil
}

// relName is how an absolute path is named in the manifest: slash
// separated, without the leading "/" ("." for "/"); on Windows the drive
// is the first component ("C:/data").
func relName(abs string) string {
	rel := strings.Trim(filepath.ToSlash(abs), "/")
	if rel == "" {
		return "."
	}
	return rel
}

// treeSelection is which entries under the include roots a capture takes:
// the roots and everything below them but excluded paths and what Confine
// denies, each root preceded by the directories above it (without their
// other contents). Capture and its totals scan both walk it, so they take
// the same entries in the same order.
type treeSelection struct {
	exclude []string
	confine *confine.Roots
	// warn, if set, is told why an entry is left out (the capture's
	// warnings; the scan stays silent so nothing is reported twice).
	warn func(rel string, err error)
}

func (s treeSelection) warnf(rel string, err error) {
	if s.warn != nil {
		s.warn(rel, err)
	}
}

func (s treeSelection) excluded(abs string) bool {
	// Globs are slash-separated everywhere.
	return MatchAny(s.exclude, filepath.ToSlash(abs))
}

// walk visits each include root depth-first in bytewise name order,
// preceded by the directories above it, and calls take with each selected
// entry's lstat; take says whether a directory's contents follow (a
// directory it could not describe is not descended into).
func (s treeSelection) walk(ctx context.Context, roots []string, take func(abs, rel string, info fs.FileInfo) (descend bool, err error)) error {
	emitted := map[string]bool{}
	var visit func(abs string, recurse bool) error
	visit = func(abs string, recurse bool) error {
		rel := relName(abs)
		info, err := os.Lstat(abs)
		if err != nil {
			s.warnf(rel, err)
			return nil
		}
		if s.confine != nil && s.confine.Denied(info) {
			s.warnf(rel, errors.New("skipped: Haven never backs up its own data and keys"))
			return nil
		}
		descend, err := take(abs, rel, info)
		if err != nil || !descend || !recurse {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		dir, err := os.Open(abs)
		if err != nil {
			s.warnf(rel, err)
			return nil
		}
		names, err := dir.Readdirnames(-1)
		dir.Close()
		if err != nil {
			s.warnf(rel, err)
		}
		slices.Sort(names)
		for _, name := range names {
			child := filepath.Join(abs, name)
			if s.excluded(child) {
				continue
			}
			if err := visit(child, true); err != nil {
				return err
			}
		}
		return nil
	}
	for _, root := range roots {
		// The directories above a root come first, once each, without
		// their other contents.
		var ancestors []string
		for d := filepath.Dir(root); ; d = filepath.Dir(d) {
			ancestors = append(ancestors, d)
			if filepath.Dir(d) == d { // "/", or a drive's root
				break
			}
		}
		for i := len(ancestors) - 1; i >= 0; i-- {
			if a := ancestors[i]; !emitted[a] {
				emitted[a] = true
				if err := visit(a, false); err != nil {
					return err
				}
			}
		}
		if err := visit(root, true); err != nil {
			return err
		}
	}
	return nil
}

// walk hands each selected entry to the workers and, in the same order,
// to the manifest collector.
func (c *capturer) walk(ctx context.Context, work, ordered chan<- *job) error {
	var files, bytes int64
	err := c.tree.Walk(ctx, c.warn, func(e Entry, src any) (bool, error) {
		j := &job{entry: e, src: src, done: make(chan struct{})}
		if j.entry.Type == TypeFile {
			files, bytes = files+1, bytes+j.entry.Size
			var err error
			j.prev, err = c.prev.find(ctx, j.entry.Path)
			if err != nil {
				return false, err
			}
			select {
			case work <- j:
			case <-ctx.Done():
				return false, ctx.Err()
			}
		} else {
			close(j.done)
		}
		select {
		case ordered <- j:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		return j.entry.Type == TypeDir, nil
	})
	if err == nil && c.walkTotals != nil {
		c.walkTotals.totals(files, bytes, true)
	}
	return err
}

// osTree is the host's filesystem under a capture's include paths.
type osTree struct {
	roots []string
	sel   treeSelection
	names *nameCache
	links map[[2]uint64]string // (dev, ino) → first path, for hardlinks
}

func (t *osTree) Source() string { return strings.Join(t.roots, ",") }

func (t *osTree) Walk(ctx context.Context, warn func(string, error), take func(e Entry, src any) (bool, error)) error {
	t.links = map[[2]uint64]string{}
	sel := t.sel
	sel.warn = warn
	return sel.walk(ctx, t.roots, func(abs, rel string, info fs.FileInfo) (bool, error) {
		var e Entry
		if err := t.describe(&e, rel, abs, info); err != nil {
			warn(rel, err)
			return false, nil
		}
		return take(e, abs)
	})
}

func (t *osTree) Open(_ context.Context, _ *Entry, src any) (TreeFile, error) {
	abs := src.(string)
	if hookBeforeOpen != nil {
		hookBeforeOpen(abs)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// osFile is a host file open for a capture.
type osFile struct{ *os.File }

func (f osFile) dataExtents(size int64) ([]extent, error) { return dataExtents(f.File, size) }

func (f osFile) Restat() (size, mtimeNs, ctimeNs int64, err error) {
	if hookBeforeFinalStat != nil {
		hookBeforeFinalStat(f.Name())
	}
	info, err := f.Stat()
	if err != nil {
		return 0, 0, 0, err
	}
	st, _ := statOf(info)
	return info.Size(), st.mtimeNs, st.ctimeNs, nil
}

// describe fills an entry's metadata from lstat. Regular files with a link
// count above one become hardlinks to the first path seen with their inode.
func (t *osTree) describe(e *Entry, rel, abs string, info fs.FileInfo) error {
	e.Path = rel
	st, ok := statOf(info)
	if !ok {
		return errors.New("no file metadata from this platform")
	}
	e.Mode = modeBits(info.Mode())
	e.UID, e.GID = st.uid, st.gid
	if st.winAttrs == 0 { // POSIX owners; Windows has none
		e.User, e.Group = t.names.user(st.uid), t.names.group(st.gid)
	}
	e.MtimeNs, e.AtimeNs, e.CtimeNs = st.mtimeNs, st.atimeNs, st.ctimeNs
	e.Inode, e.Device = st.inode, st.device
	e.WinAttrs = st.winAttrs
	e.Xattrs = readXattrs(abs, info.Mode()&fs.ModeSymlink != 0)
	switch {
	case info.Mode().IsDir():
		e.Type = TypeDir
	case info.Mode()&fs.ModeSymlink != 0:
		e.Type = TypeSymlink
		target, err := os.Readlink(abs)
		if err != nil {
			return err
		}
		e.Target = target
	case info.Mode().IsRegular():
		e.Type = TypeFile
		e.Size = info.Size()
		if st.nlink > 1 {
			key := [2]uint64{st.device, st.inode}
			if first, ok := t.links[key]; ok {
				e.Type, e.Target, e.Size = TypeHardlink, first, 0
				return nil
			}
			t.links[key] = rel
			e.Links = uint32(min(st.nlink, math.MaxUint32))
		}
	case info.Mode()&fs.ModeNamedPipe != 0:
		e.Type = TypeFIFO
	case info.Mode()&fs.ModeDevice != 0:
		e.Type = TypeBlockDev
		if info.Mode()&fs.ModeCharDevice != 0 {
			e.Type = TypeCharDev
		}
		e.DevMajor, e.DevMinor = st.devMajor, st.devMinor
	case info.Mode()&fs.ModeSocket != 0:
		return errors.New("skipped: a socket is not backed up (the program that listens on it makes it anew)")
	default:
		return fmt.Errorf("skipped: unknown file type %v", info.Mode().Type())
	}
	return nil
}

// workerState is what one capture worker reuses from file to file.
type workerState struct {
	params chunker.Params
	cdc    *chunker.CDC
	small  smallBatch
}

// Small files' chunks are saved together, up to smallBatchBytes at a time,
// instead of file by file: a save is a dedup round trip to the index, and
// one per file made a tree of small files run at a tenth of the read
// limit, bound by the index. They are copied out of the chunker's buffer,
// which the next file overwrites; a file above smallFileBytes is saved on
// its own, from that buffer, as before.
const (
	smallFileBytes  = 256 << 10
	smallBatchBytes = 4 << 20
)

// smallBatch holds copies of small files' chunks until they are saved.
type smallBatch struct {
	buf    []byte
	ids    []format.ID
	chunks [][]byte
}

// add copies chunks (of one small file) into the batch, saving the batch
// first when they would not fit.
func (b *smallBatch) add(ctx context.Context, w repo.Sink, ids []format.ID, chunks [][]byte) error {
	n := 0
	for _, ch := range chunks {
		n += len(ch)
	}
	if len(b.buf)+n > cap(b.buf) {
		if err := b.flush(ctx, w); err != nil {
			return err
		}
		if cap(b.buf) < n {
			b.buf = make([]byte, 0, max(n, smallBatchBytes))
		}
	}
	for i, ch := range chunks {
		start := len(b.buf)
		b.buf = append(b.buf, ch...)
		b.ids = append(b.ids, ids[i])
		b.chunks = append(b.chunks, b.buf[start:len(b.buf):len(b.buf)])
	}
	return nil
}

// flush saves the batch's chunks and empties it.
func (b *smallBatch) flush(ctx context.Context, w repo.Sink) error {
	if err := saveData(ctx, w, b.ids, b.chunks); err != nil {
		return err
	}
	b.buf, b.ids, b.chunks = b.buf[:0], b.ids[:0], b.chunks[:0]
	return nil
}

// saveData saves file chunks; a failure is the repository's (it ends the
// capture), not the file's.
func saveData(ctx context.Context, w repo.Sink, ids []format.ID, chunks [][]byte) error {
	if len(ids) == 0 {
		return nil
	}
	if err := w.Save(ctx, format.Data, ids, chunks); err != nil {
		return fmt.Errorf("%w: %v", errRepository, err)
	}
	return nil
}

// workerStates keeps capture workers' chunkers (with their buffers, 8 MiB
// at the default parameters) from one backup to the next: allocating and
// clearing them anew for every backup was a visible share of a full
// backup's CPU. Not a sync.Pool, which a collection between two backups
// empties (see package freelist).
var workerStates = freelist.List[*workerState]{New: func() *workerState { return nil }, Max: 16}

// takeWorkerState returns a worker's state for chunking with p, reusing a
// pooled one only if it chunks with the same parameters.
func takeWorkerState(p chunker.Params) *workerState {
	if ws := workerStates.Get(); ws != nil && ws.params == p {
		return ws
	}
	cdc, _ := chunker.NewCDC(nil, p)
	return &workerState{params: p, cdc: cdc}
}

// putWorkerState pools ws, letting go of the last file it read.
func putWorkerState(ws *workerState) {
	ws.cdc.Reset(nil)
	ws.small.buf, ws.small.ids, ws.small.chunks = ws.small.buf[:0], ws.small.ids[:0], ws.small.chunks[:0]
	workerStates.Put(ws)
}

// process reads one regular file: reused from the parent when its size,
// mtime, ctime and inode are unchanged, chunked otherwise.
func (c *capturer) process(ctx context.Context, j *job, ws *workerState) error {
	e := &j.entry
	if p := j.prev; p != nil && p.Type == TypeFile && p.Size == e.Size && p.MtimeNs == e.MtimeNs &&
		p.CtimeNs == e.CtimeNs && p.Inode == e.Inode && p.WinAttrs == e.WinAttrs && c.reusable(p) {
		e.Chunks = p.Chunks
		c.reused.Add(1)
		c.reusedBytes.Add(e.Size)
		return nil
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		err = c.readFile(ctx, j, ws)
		if !errors.Is(err, errChangedWhileRead) {
			break
		}
	}
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errRepository):
		return err
	}
	// Unreadable or still changing after a retry: a warning, and the entry
	// is left out rather than recorded with wrong content.
	c.warn(e.Path, err)
	j.skip = true
	return nil
}

// reusable tells whether an unchanged-looking parent entry may be taken
// on its metadata alone (CaptureOptions.ReuseBefore).
func (c *capturer) reusable(p *Entry) bool {
	if c.opts.ReuseBefore.IsZero() {
		return true
	}
	before := c.opts.ReuseBefore.UnixNano()
	return p.MtimeNs < before && p.CtimeNs < before
}

// hookBeforeFinalStat lets tests change a file at the one moment that makes
// a read inconsistent (after its bytes are read, before the check), which a
// concurrent writer only hits when the scheduler lets it.
var hookBeforeFinalStat func(path string)

// hookBeforeOpen lets tests remove a file the walk has seen before it is
// read, as a database dropping a table during a backup does.
var hookBeforeOpen func(path string)

var (
	errChangedWhileRead = errors.New("file changed while it was read")
	errRepository       = errors.New("repository")
)

func (c *capturer) readFile(ctx context.Context, j *job, ws *workerState) error {
	e := &j.entry
	f, err := c.tree.Open(ctx, e, j.src)
	if err != nil {
		return err
	}
	defer f.Close()
	e.Chunks = e.Chunks[:0]
	cdc := ws.cdc
	// Chunks wait in the chunker's buffer, not in a copy, for one dedup
	// round trip for all of them: they are saved whenever the chunker is
	// about to read over them (every Max bytes or more, at least once a
	// file), so a large file is never held whole.
	var (
		ids    []format.ID
		chunks [][]byte
		size   int64
	)
	flush := func() error {
		if err := saveData(ctx, c.w, ids, chunks); err != nil {
			return err
		}
		ids, chunks = ids[:0], chunks[:0]
		return nil
	}
	extents := []extent{{offset: 0, length: e.Size}}
	if sf, ok := f.(sparseFile); ok {
		if extents, err = sf.dataExtents(e.Size); err != nil {
			return err
		}
	}
	for _, x := range extents {
		if x.hole {
			e.Chunks = append(e.Chunks, ChunkRef{Len: x.length, Hole: true})
			size += x.length
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		cdc.Reset(io.NewSectionReader(f, x.offset, x.length))
		for {
			if cdc.Refills() {
				if err := flush(); err != nil {
					return err
				}
			}
			ch, err := cdc.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			id := c.w.Hash(ch.Data)
			e.Chunks = append(e.Chunks, ChunkRef{ID: id, Len: int64(len(ch.Data))})
			size += int64(len(ch.Data))
			ids = append(ids, id)
			chunks = append(chunks, ch.Data)
		}
	}
	if size <= smallFileBytes {
		// The chunks still pending lie in the chunker's buffer, which
		// the next file overwrites: add copies them.
		if err := ws.small.add(ctx, c.w, ids, chunks); err != nil {
			return err
		}
	} else if err := flush(); err != nil {
		return err
	}
	nowSize, mtimeNs, ctimeNs, err := f.Restat()
	if err != nil {
		return err
	}
	if size != e.Size || nowSize != e.Size || mtimeNs != e.MtimeNs || ctimeNs != e.CtimeNs {
		if c.opts.Fuzzy {
			// What was read stands, sized as read; the times seen before
			// the read stay, older than the file's now, so that the next
			// capture reads it again.
			e.Size = size
			return nil
		}
		e.Size, e.MtimeNs, e.CtimeNs = nowSize, mtimeNs, ctimeNs
		return errChangedWhileRead
	}
	return nil
}

// previous walks the parent point's manifest alongside the new walk. Both
// are in walk order, so finding a path's previous entry is a merge step and
// memory stays constant however many files the tree holds.
type previous struct {
	m   *repo.ManifestReader
	cur *Entry
}

func openPrevious(ctx context.Context, src repo.Source, parent format.ID) (*previous, error) {
	if parent.IsZero() {
		return &previous{}, nil
	}
	m, err := repo.OpenManifest(ctx, src, parent)
	if err != nil {
		return nil, fmt.Errorf("reading the parent point: %w", err)
	}
	return &previous{m: m}, nil
}

// totals are the parent point's regular files and their sizes, if there
// is a parent and its root records them.
func (p *previous) totals() (files, bytes int64, ok bool) {
	if p.m == nil || len(p.m.Root.Meta) == 0 {
		return 0, 0, false
	}
	var m Meta
	if err := json.Unmarshal(p.m.Root.Meta, &m); err != nil {
		return 0, 0, false
	}
	return m.Files, m.Bytes, true
}

// find returns the parent's entry for path, or nil. Calls must come in
// walk order.
func (p *previous) find(ctx context.Context, path string) (*Entry, error) {
	for p.m != nil {
		if p.cur == nil {
			var e Entry
			err := p.m.Next(&e)
			if err == io.EOF {
				p.m = nil
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("reading the parent point: %w", err)
			}
			p.cur = &e
		}
		switch c := ComparePaths(p.cur.Path, path); {
		case c < 0:
			p.cur = nil
		case c == 0:
			e := p.cur
			p.cur = nil
			return e, nil
		default:
			return nil, nil
		}
	}
	return nil, nil
}

// ComparePaths orders slash-separated paths as the walk visits them: by
// component, bytewise, with a directory before everything inside it.
func ComparePaths(a, b string) int {
	for {
		if a == b {
			return 0
		}
		ai, bi := strings.IndexByte(a, '/'), strings.IndexByte(b, '/')
		ah, bh := a, b
		if ai >= 0 {
			ah = a[:ai]
		}
		if bi >= 0 {
			bh = b[:bi]
		}
		if c := strings.Compare(ah, bh); c != 0 {
			return c
		}
		switch {
		case ai < 0:
			return -1
		case bi < 0:
			return 1
		}
		a, b = a[ai+1:], b[bi+1:]
	}
}

// nameCache resolves uid and gid to names once each (see accountCache).
type nameCache struct {
	users, groups accountCache[uint32, string]
}

func newNameCache() *nameCache {
	return &nameCache{
		users: newAccountCache(func(id uint32) string {
			if u, err := user.LookupId(strconv.Itoa(int(id))); err == nil {
				return u.Username
			}
			return ""
		}),
		groups: newAccountCache(func(id uint32) string {
			if g, err := user.LookupGroupId(strconv.Itoa(int(id))); err == nil {
				return g.Name
			}
			return ""
		}),
	}
}

func (n *nameCache) user(id uint32) string  { return n.users.get(id) }
func (n *nameCache) group(id uint32) string { return n.groups.get(id) }

// accountCache remembers the answers of one kind of account lookup (user
// or group, by id or by name). Each lookup goes through NSS (files, LDAP,
// sssd) and costs far more than the file it is for, and a tree has few
// distinct owners, so backups and restores look each one up once.
type accountCache[K comparable, V any] struct {
	mu     sync.Mutex
	known  map[K]V
	lookup func(K) V
}

func newAccountCache[K comparable, V any](lookup func(K) V) accountCache[K, V] {
	return accountCache[K, V]{known: map[K]V{}, lookup: lookup}
}

func (c *accountCache[K, V]) get(k K) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.known[k]
	if !ok {
		v = c.lookup(k)
		c.known[k] = v
	}
	return v
}
