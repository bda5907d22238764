package files

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/pathtext"
)

// Conflict policies for files that already exist at the destination.
const (
	ConflictOverwrite = "overwrite"
	ConflictSkip      = "skip"
	ConflictRename    = "rename"
)

// RestoreOptions configure one restore.
type RestoreOptions struct {
	// Target is the directory that stands for "/": "/" restores every path
	// to its original location, any other directory recreates the backed-up
	// paths below it.
	Target string
	// Paths limits the restore to these absolute paths and everything
	// below them; empty restores everything. A path that is not valid
	// UTF-8 may be given Go-quoted, as ShowPath writes it.
	Paths []string
	// Conflict is what to do with an existing file (default overwrite).
	Conflict string
	// Owner restores ownership (needs root); by name when the name exists
	// on this host, else by number.
	Owner bool
	// Warn receives per-file failures and entries this host cannot
	// restore; the restore goes on with the rest. The path is absolute, as
	// ShowPath writes it.
	Warn func(path string, err error)
	// Resume skips files an interrupted run of the same restore already
	// finished: same size and modification time as the entry, and content
	// that verifies against the point (a file reaches its final name only
	// once complete and verified). Under the rename policy the earlier
	// run's .restored-N copies count too. It overrides the conflict policy
	// for them.
	Resume bool
	// Progress, if set, is told about every restored file.
	Progress func(files, bytes int64)
	// Confine, if set, is where the restore may write: an entry whose
	// destination leads elsewhere fails alone, and the directories above
	// the roots (on the way to an original location) are left untouched.
	Confine *confine.Roots
	// Include, when not empty, narrows the restore (within Paths) to the
	// entries that match one of these globs or lie below a directory that
	// does (see glob.go); the directories on the way to them are restored
	// too, and only those. Exclude leaves out the entries that match, and
	// everything below a directory that does.
	Include, Exclude []string
}

// RestoreStats summarises a restore.
type RestoreStats struct {
	Files, Dirs, Symlinks, Bytes, Skipped int64
	// Special counts FIFOs and device nodes restored; NotCreated the
	// device nodes this process may not create (not root), each also a
	// warning naming it.
	Special, NotCreated int64
	// Resumed counts files a previous run had finished; Fetched is the
	// chunk data this run read from the repository.
	Resumed, Fetched int64
	Failed           []string
}

// ErrIncomplete means some entries could not be restored; RestoreStats.Failed
// names them, and everything else was restored.
var ErrIncomplete = errors.New("restore incomplete")

// Files are restored in batches: one index lookup and a few coalesced
// reads serve many small files, while large files still spread over all
// readers.
const (
	batchFiles  = 512
	batchChunks = 4096
	batchSize   = 128 << 20
)

type pendingFile struct {
	entry Entry
	path  string // the final name
	tmp   string // where it is written until verified (tempName)
}

// keptDir is an existing directory a restore writes into without being
// asked to restore it: its modification time is put back at the end.
type keptDir struct {
	path  string
	mtime time.Time
}

type restorer struct {
	r      Source
	root   format.ID
	opts   RestoreOptions
	paths  []string // opts.Paths as manifest paths: bytes, no leading "/"
	stats  RestoreStats
	batch  []pendingFile
	chunks int
	bytes  int64
	dirs   []Entry
	kept   []keptDir // existing directories the restore was not asked for
	// linkMap maps a restored file's manifest path to where it was
	// written, for the hardlinks that target it: only files marked as
	// having links (Entry.Links), unless the point predates that mark
	// (allLinks), so that memory does not grow with the files restored.
	linkMap  map[string]string
	allLinks bool
	// pending is the batch being synced in the background (see flush).
	pending *pendingPlace
	ids     *idCache
	// windows lends large files their direct I/O windows (direct.go).
	windows *windowPool
}

// idCache resolves user and group names to this host's ids once each;
// -1 stands for a name this host does not know.
type idCache struct {
	users, groups accountCache[string, int]
}

func newIDCache() *idCache {
	return &idCache{
		users: newAccountCache(func(name string) int {
			if u, err := user.Lookup(name); err == nil {
				if id, err := strconv.Atoi(u.Uid); err == nil {
					return id
				}
			}
			return -1
		}),
		groups: newAccountCache(func(name string) int {
			if g, err := user.LookupGroup(name); err == nil {
				if id, err := strconv.Atoi(g.Gid); err == nil {
					return id
				}
			}
			return -1
		}),
	}
}

// remember records where a file was restored if a hardlink may target it.
func (rs *restorer) remember(e *Entry, dst string) {
	if e.Links > 1 || rs.allLinks {
		rs.linkMap[e.Path] = dst
	}
}

// hookRestored lets tests see how many restored files a restore kept in
// its hardlink map.
var hookRestored func(remembered int)

// Restore writes a point's tree under opts.Target. A file whose chunks are
// damaged or missing, or whose written bytes do not read back as the
// point's chunks, fails alone (named in the stats and the error); the rest
// of the tree is restored.
func Restore(ctx context.Context, r Source, root format.ID, opts RestoreOptions) (RestoreStats, error) {
	if opts.Conflict == "" {
		opts.Conflict = ConflictOverwrite
	}
	if !slices.Contains([]string{ConflictOverwrite, ConflictSkip, ConflictRename}, opts.Conflict) {
		return RestoreStats{}, fmt.Errorf("conflict policy %q: want overwrite, skip or rename", opts.Conflict)
	}
	// "/" is absolute everywhere: on Windows it means each path's own drive.
	if opts.Target != "/" && !filepath.IsAbs(opts.Target) {
		return RestoreStats{}, fmt.Errorf("restore target %q is not an absolute path on this host", opts.Target)
	}
	if opts.Confine != nil && !opts.Confine.Above(opts.Target) {
		if err := opts.Confine.Check(opts.Target); err != nil {
			return RestoreStats{}, fmt.Errorf("restore target: %w", err)
		}
	}
	if err := os.MkdirAll(opts.Target, 0o755); err != nil {
		return RestoreStats{}, err
	}
	m, err := repo.OpenManifest(ctx, r, root)
	if err != nil {
		return RestoreStats{}, err
	}
	rs, err := newRestorer(r, root, opts)
	if err != nil {
		return RestoreStats{}, err
	}
	var meta Meta
	if len(m.Root.Meta) > 0 {
		if err := json.Unmarshal(m.Root.Meta, &meta); err != nil {
			return RestoreStats{}, fmt.Errorf("manifest root: %v: %w", err, format.ErrCorrupt)
		}
	}
	rs.allLinks = !meta.LinksMarked
	defer func() {
		if rs.windows != nil {
			rs.windows.release()
		}
	}()
	if hookRestored != nil {
		defer func() { hookRestored(len(rs.linkMap)) }()
	}
	if err := rs.walkSelection(m, func(e Entry, sel selection) error { return rs.entry(ctx, e, sel) }); err != nil {
		// The batch synced in the background is put in place, or its
		// temporaries removed when the restore was canceled.
		rs.settle(ctx)
		return rs.stats, err
	}
	if err := rs.flush(ctx, true); err != nil {
		return rs.stats, err
	}
	// Directory times last, deepest first, or writing into them would
	// change them again.
	for i := len(rs.dirs) - 1; i >= 0; i-- {
		rs.finish(rs.dirs[i], rs.dest(rs.dirs[i].Path))
	}
	for i := len(rs.kept) - 1; i >= 0; i-- {
		// A zero access time leaves it as it is.
		if err := os.Chtimes(rs.kept[i].path, time.Time{}, rs.kept[i].mtime); err != nil {
			rs.fail(rs.kept[i].path, fmt.Errorf("keeping the directory's time: %w", err))
		}
	}
	if len(rs.stats.Failed) > 0 {
		return rs.stats, fmt.Errorf("%w: %d entries failed, first %s", ErrIncomplete, len(rs.stats.Failed), rs.stats.Failed[0])
	}
	return rs.stats, nil
}

// newRestorer checks what a restore and its dry run share: the paths and
// the globs.
func newRestorer(r Source, root format.ID, opts RestoreOptions) (*restorer, error) {
	rs := &restorer{r: r, root: root, opts: opts, linkMap: map[string]string{}, ids: newIDCache()}
	for _, p := range opts.Paths {
		p, err := pathtext.Parse(p)
		if err != nil {
			return nil, err
		}
		rs.paths = append(rs.paths, strings.Trim(p, "/"))
	}
	for _, g := range slices.Concat(opts.Include, opts.Exclude) {
		if !ValidGlob(g) {
			return nil, fmt.Errorf("%q is not a valid glob", g)
		}
	}
	return rs, nil
}

// walkSelection reads the manifest and calls fn with every entry the
// restore takes, in walk order. Under Include patterns a directory that
// does not match is held back until an entry below it does, and then
// handed over just before that entry; one with no match below is never
// handed over.
func (rs *restorer) walkSelection(m *repo.ManifestReader, fn func(e Entry, sel selection) error) error {
	var held []Entry // directories on the way to the current entry, none matching yet
	for {
		var e Entry
		err := m.Next(&e)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		sel := rs.selected(e.Path)
		if sel == notSelected || sel == aboveSelected && e.Type != TypeDir {
			continue
		}
		if sel == selected && (len(rs.opts.Include) > 0 || len(rs.opts.Exclude) > 0) {
			for len(held) > 0 && !below(held[len(held)-1].Path, e.Path) {
				held = held[:len(held)-1]
			}
			switch {
			case MatchAnyAbove(rs.opts.Exclude, e.Path):
				continue
			case len(rs.opts.Include) > 0 && !MatchAnyAbove(rs.opts.Include, e.Path):
				if e.Type == TypeDir {
					held = append(held, e)
				}
				continue
			}
			for _, d := range held {
				if err := fn(d, selected); err != nil {
					return err
				}
			}
			held = held[:0]
		}
		if err := fn(e, sel); err != nil {
			return err
		}
	}
}

// selection is how a manifest entry relates to the restore's Paths.
type selection int

const (
	notSelected selection = iota
	// aboveSelected is a directory above a selected path (or the target
	// itself): created if missing, and otherwise left as it is, since the
	// restore was not asked for it.
	aboveSelected
	selected
)

func (rs *restorer) selected(path string) selection {
	if path == "." {
		return aboveSelected // the target directory keeps its own metadata
	}
	if len(rs.paths) == 0 {
		return selected
	}
	out := notSelected
	for _, p := range rs.paths {
		switch {
		case p == "" || path == p || strings.HasPrefix(path, p+"/"):
			return selected
		case strings.HasPrefix(p, path+"/"):
			out = aboveSelected
		}
	}
	return out
}

func (rs *restorer) dest(path string) string {
	if path == "." {
		return rs.opts.Target
	}
	p := filepath.FromSlash(path)
	// A Windows path starts with its drive ("C:"): to the original
	// location that is the drive itself, below a target a directory "C".
	// Elsewhere there is no volume name and this does nothing.
	if vol := filepath.VolumeName(p); vol != "" {
		if rs.opts.Target == "/" || rs.opts.Target == `\` {
			return vol + string(filepath.Separator) + strings.TrimPrefix(p[len(vol):], string(filepath.Separator))
		}
		p = strings.TrimSuffix(vol, ":") + p[len(vol):]
	}
	return filepath.Join(rs.opts.Target, p)
}

func (rs *restorer) fail(path string, err error) {
	rs.stats.Failed = append(rs.stats.Failed, fmt.Sprintf("%s: %v", ShowPath(path), err))
	if rs.opts.Warn != nil {
		rs.opts.Warn(ShowPath(path), err)
	}
}

func validPath(p string) bool {
	if p == "." {
		return true
	}
	if p == "" || strings.HasPrefix(p, "/") {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

func (rs *restorer) entry(ctx context.Context, e Entry, sel selection) error {
	if !validPath(e.Path) {
		rs.fail(e.Path, errors.New("unsafe path in manifest"))
		return nil
	}
	dst := rs.dest(e.Path)
	if c := rs.opts.Confine; c != nil {
		if e.Type == TypeDir && c.Above(dst) {
			return nil
		}
		// A directory is created through whatever stands at its name; any
		// other entry replaces what stands there.
		check := c.CheckEntry
		if e.Type == TypeDir {
			check = c.Check
		}
		if err := check(dst); err != nil {
			rs.fail(e.Path, err)
			return nil
		}
	}
	switch e.Type {
	case TypeDir:
		info, missing := os.Lstat(dst)
		if err := os.MkdirAll(dst, 0o700); err != nil {
			rs.fail(e.Path, err)
			return nil
		}
		// Only what the restore was asked for, or created, gets the
		// point's metadata: an existing target or parent keeps its own,
		// times included (writing into it changes its mtime).
		if sel == selected || missing != nil {
			rs.dirs = append(rs.dirs, e)
		} else {
			rs.kept = append(rs.kept, keptDir{dst, info.ModTime()})
		}
		rs.stats.Dirs++
	case TypeSymlink:
		if !rs.prepare(e.Path, &dst) {
			return nil
		}
		if err := os.Symlink(e.Target, dst); err != nil {
			rs.fail(e.Path, err)
			return nil
		}
		rs.finish(e, dst)
		rs.stats.Symlinks++
	case TypeHardlink:
		if err := rs.flush(ctx, true); err != nil { // the link's target must exist first
			return err
		}
		first, ok := rs.linkMap[e.Target]
		if !ok {
			// The inode's first name was not restored here: it is outside
			// the selection, or a file already at its destination was
			// left alone (skip), which must not be linked to. This name
			// takes the point's content, and later names link to it.
			return rs.linkOutsideSelection(ctx, e)
		}
		if !rs.prepare(e.Path, &dst) {
			return nil
		}
		if err := os.Link(first, dst); err != nil {
			rs.fail(e.Path, err)
		}
	case TypeFile:
		if rs.opts.Resume && rs.resumed(&e, &dst) {
			rs.remember(&e, dst)
			rs.stats.Resumed++
			rs.stats.Files++
			rs.stats.Bytes += e.Size
			return nil
		}
		if !rs.prepare(e.Path, &dst) {
			if rs.opts.Resume {
				os.Remove(tempName(dst)) // torn by the earlier run, now not wanted
			}
			return nil
		}
		rs.batch = append(rs.batch, pendingFile{entry: e, path: dst, tmp: tempName(dst)})
		rs.chunks += len(e.Chunks)
		rs.bytes += e.Size
		if len(rs.batch) >= batchFiles || rs.chunks >= batchChunks || rs.bytes >= batchSize {
			return rs.flush(ctx, false)
		}
	case TypeFIFO, TypeCharDev, TypeBlockDev:
		if !rs.prepare(e.Path, &dst) {
			return nil
		}
		if err := makeSpecial(dst, &e); err != nil {
			if errors.Is(err, errNotPermitted) {
				// Not a failure of the restore: this host or user cannot
				// have the node. Said plainly, naming it.
				rs.stats.NotCreated++
				if rs.opts.Warn != nil {
					rs.opts.Warn(ShowPath(e.Path), err)
				}
				return nil
			}
			rs.fail(e.Path, err)
			return nil
		}
		rs.finish(e, dst)
		rs.stats.Special++
	default:
		rs.fail(e.Path, fmt.Errorf("unknown entry type %q", e.Type))
	}
	return nil
}

// errNotPermitted marks a special file this process may not create.
var errNotPermitted = errors.New("not permitted here")

// linkOutsideSelection restores a hardlink whose first name the restore
// did not write (outside the selection, or skipped because something was
// already there) as a file with that name's content and metadata (read again from
// the manifest: such links are rare, and remembering every skipped file
// would cost memory on every selective restore).
func (rs *restorer) linkOutsideSelection(ctx context.Context, link Entry) error {
	m, err := repo.OpenManifest(ctx, rs.r, rs.root)
	if err != nil {
		return err
	}
	for {
		var e Entry
		if err := m.Next(&e); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		if c := ComparePaths(e.Path, link.Target); c > 0 {
			break
		} else if c < 0 || e.Type != TypeFile {
			continue
		}
		e.Path = link.Path
		if err := rs.entry(ctx, e, selected); err != nil {
			return err
		}
		if err := rs.flush(ctx, true); err != nil {
			return err
		}
		if dst, ok := rs.linkMap[link.Path]; ok {
			rs.linkMap[link.Target] = dst
		}
		return nil
	}
	rs.fail(link.Path, fmt.Errorf("hardlink target %s is not in the point", ShowPath(link.Target)))
	return nil
}

// prepare applies the conflict policy to a destination that exists. It
// returns false when the entry is to be skipped.
func (rs *restorer) prepare(path string, dst *string) bool {
	if _, err := os.Lstat(*dst); err != nil {
		return true
	}
	switch rs.opts.Conflict {
	case ConflictSkip:
		rs.stats.Skipped++
		return false
	case ConflictRename:
		for i := 1; ; i++ {
			alt := Renamed(*dst, i)
			if _, err := os.Lstat(alt); err != nil {
				*dst = alt
				return true
			}
		}
	}
	if err := os.Remove(*dst); err != nil {
		rs.fail(path, err)
		return false
	}
	return true
}

// Renamed is the i-th name the rename policy gives a restored file whose
// destination dst exists (restores of NAS shares use it too).
func Renamed(dst string, i int) string { return fmt.Sprintf("%s.restored-%d", dst, i) }

// resumed reports whether an earlier run of this restore already put e in
// place: at dst or, under the rename policy, at one of its .restored-N
// names (dst is then set to it). Only a file that verifies counts.
func (rs *restorer) resumed(e *Entry, dst *string) bool {
	candidates := []string{*dst}
	if rs.opts.Conflict == ConflictRename {
		for i := 1; ; i++ {
			alt := Renamed(*dst, i)
			if _, err := os.Lstat(alt); err != nil {
				break
			}
			candidates = append(candidates, alt)
		}
	}
	for _, c := range candidates {
		if finished(c, e) && verifyPath(rs.r, c, e) == nil {
			*dst = c
			return true
		}
	}
	return false
}

// flush restores the batched files: all their chunks in one parallel load.
// Files that load fails for are retried alone, so one damaged chunk fails
// only the files that contain it.
//
// Batches overlap: a loaded batch's sync runs in the background while the
// walk goes on and the next batch loads, and the batch is put in place at
// the next flush (files land in walk order, each only once durable). A
// barrier flush (before a hardlink, whose target must exist, and at the
// end) puts everything in place before it returns. Only the sync runs in
// the background, touching no restorer state.
func (rs *restorer) flush(ctx context.Context, barrier bool) error {
	batch := rs.batch
	rs.batch, rs.chunks, rs.bytes = nil, 0, 0
	var verified []bool
	var err error
	if len(batch) > 0 {
		verified, err = rs.load(ctx, batch)
	}
	if serr := rs.settle(ctx); serr != nil {
		for _, f := range batch {
			os.Remove(f.tmp)
		}
		return serr
	}
	if len(batch) == 0 {
		return nil
	}
	if err == nil && !barrier && ctx.Err() == nil {
		rs.pending = startSync(batch)
		return nil
	}
	left, perr := rs.place(ctx, batch, verified, syncFiles(tempPaths(batch, verified)))
	if err == nil {
		err = perr
	}
	return rs.retry(ctx, left, err)
}

// tempPaths lists the temporary names of a batch's verified files (all of
// them when verified is nil).
func tempPaths(batch []pendingFile, verified []bool) []string {
	var paths []string
	for i, f := range batch {
		if verified == nil || verified[i] {
			paths = append(paths, f.tmp)
		}
	}
	return paths
}

// pendingPlace is a loaded, verified batch whose sync runs in the
// background.
type pendingPlace struct {
	batch  []pendingFile
	synced chan error
}

// Test hooks: hookBackgroundSync runs as a batch's background sync is
// started, and what it returns runs on the sync's goroutine before the
// sync; hookLoad runs as a batch starts loading; hookWritten, as a
// file's last bytes are written, before they are checked.
var (
	hookBackgroundSync func() func()
	hookLoad           func()
	hookWritten        func(tmp string)
)

func startSync(batch []pendingFile) *pendingPlace {
	p := &pendingPlace{batch: batch, synced: make(chan error, 1)}
	paths := tempPaths(batch, nil)
	var hook func()
	if hookBackgroundSync != nil {
		hook = hookBackgroundSync()
	}
	go func() {
		if hook != nil {
			hook()
		}
		p.synced <- syncFiles(paths)
	}()
	return p
}

// settle waits for the pending batch's sync and puts the batch in place.
func (rs *restorer) settle(ctx context.Context) error {
	p := rs.pending
	if p == nil {
		return nil
	}
	rs.pending = nil
	left, err := rs.place(ctx, p.batch, nil, <-p.synced)
	return rs.retry(ctx, left, err)
}

// retry restores alone each file a batch left, after err: a canceled
// restore removes their temporaries instead (a later attempt writes them
// again from the start, so they would only be left in the user's tree).
// It returns an error only when ctx is done.
func (rs *restorer) retry(ctx context.Context, left []pendingFile, err error) error {
	if ctx.Err() != nil {
		for _, f := range left {
			os.Remove(f.tmp)
		}
		return ctx.Err()
	}
	if err == nil {
		return nil
	}
	for _, f := range left {
		one := []pendingFile{f}
		verified, err := rs.load(ctx, one)
		if err == nil {
			var rest []pendingFile
			if rest, err = rs.place(ctx, one, verified, syncFiles(tempPaths(one, verified))); err == nil && len(rest) > 0 {
				err = ctx.Err()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			os.Remove(f.tmp)
			rs.fail(f.entry.Path, err)
		}
	}
	return nil
}

type chunkTarget struct {
	file   int // index into the batch
	chunk  int // index into the file's chunks
	offset int64
}

// load writes a batch with one parallel load. Each file is written under
// its temporary name and, as soon as its last chunk lands, read back and
// checked against the manifest's chunk ids; a large file is written with
// direct I/O where the filesystem takes it, its chunks checked in memory
// just before they are written (direct.go). It reports which files were
// verified, even when the load failed for others.
func (rs *restorer) load(ctx context.Context, batch []pendingFile) (verified []bool, err error) {
	if hookLoad != nil {
		hookLoad()
	}
	var ids []format.ID
	var targets []chunkTarget
	opened := make([]*os.File, len(batch))
	direct := make([]*directFile, len(batch))
	remaining := make([]int64, len(batch))
	verified = make([]bool, len(batch))
	var mu sync.Mutex
	// writing: the window pool's writers run for this load (direct.go);
	// they are waited for before anything is closed.
	writing := false
	defer func() {
		if writing {
			if werr := rs.windows.wait(); err == nil {
				err = werr
			}
		}
		for i, f := range opened {
			if f != nil {
				if direct[i] != nil {
					direct[i].abandon()
				}
				f.Close()
			}
		}
	}()
	done := func(i int) error {
		mu.Lock()
		f := opened[i]
		opened[i] = nil
		mu.Unlock()
		if hookWritten != nil {
			hookWritten(batch[i].tmp)
		}
		var inMemory func(int) bool
		var err error
		if d := direct[i]; d != nil {
			err = d.finish()
			inMemory = d.checkedInMemory
		}
		if err == nil {
			err = verifyWritten(rs.r, f, &batch[i].entry, inMemory)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		mu.Lock()
		verified[i] = true
		mu.Unlock()
		return nil
	}
	for i, pf := range batch {
		f, err := os.OpenFile(pf.tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return verified, fmt.Errorf("%s: %w", pf.entry.Path, err)
		}
		opened[i] = f
		// Setting the size first leaves holes sparse: only data is written.
		if err := f.Truncate(pf.entry.Size); err != nil {
			return verified, err
		}
		if pf.entry.Size >= directFileBytes {
			if df := openDirect(pf.tmp); df != nil {
				if rs.windows == nil {
					rs.windows = newWindowPool()
				}
				if !writing {
					rs.windows.start()
					writing = true
				}
				direct[i] = newDirectFile(rs.r, rs.windows, df, f, &batch[i].entry, func() error { return done(i) })
			}
		}
		var off int64
		for j, c := range pf.entry.Chunks {
			if !c.Hole {
				ids = append(ids, c.ID)
				targets = append(targets, chunkTarget{file: i, chunk: j, offset: off})
				remaining[i]++
			}
			off += c.Len
		}
	}
	for i := range batch {
		if remaining[i] == 0 {
			if err := done(i); err != nil {
				return verified, err
			}
		}
	}
	return verified, rs.r.Load(ctx, ids, func(k int, data []byte) error {
		tg := targets[k]
		atomic.AddInt64(&rs.stats.Fetched, int64(len(data)))
		if d := direct[tg.file]; d != nil {
			return d.arrive(tg.chunk, data)
		}
		// The file was just truncated to its size, so it already reads as
		// zeros there: skipping zero chunks keeps those regions sparse.
		if !chunker.IsZero(data) {
			mu.Lock()
			f := opened[tg.file]
			mu.Unlock()
			if _, err := f.WriteAt(data, tg.offset); err != nil {
				return err
			}
		}
		if atomic.AddInt64(&remaining[tg.file], -1) == 0 {
			return done(tg.file)
		}
		return nil
	})
}

// place puts the verified files of a batch (all of them when verified is
// nil) in place, given synced, the outcome of the sync that made their
// bytes durable: each gets its metadata and is renamed to its final name,
// so a file at its final name is always whole; after a failed sync none
// is. It returns the files it did not place, with ctx's error when it
// stopped early.
func (rs *restorer) place(ctx context.Context, batch []pendingFile, verified []bool, synced error) ([]pendingFile, error) {
	if synced != nil {
		return batch, fmt.Errorf("making restored files durable: %w", synced)
	}
	var left []pendingFile
	for i, pf := range batch {
		if verified != nil && !verified[i] || ctx.Err() != nil {
			left = append(left, pf)
			continue
		}
		rs.finish(pf.entry, pf.tmp)
		if err := os.Rename(pf.tmp, pf.path); err != nil {
			os.Remove(pf.tmp)
			rs.fail(pf.entry.Path, err)
			continue
		}
		rs.remember(&pf.entry, pf.path)
		rs.stats.Files++
		rs.stats.Bytes += pf.entry.Size
		if rs.opts.Progress != nil {
			rs.opts.Progress(rs.stats.Files, rs.stats.Bytes)
		}
	}
	if len(left) > 0 && ctx.Err() != nil {
		return left, ctx.Err()
	}
	return left, nil
}

// finish applies metadata: xattrs, ownership, then mode and times (last,
// since the others change ctime), as this OS does them.
func (rs *restorer) finish(e Entry, dst string) {
	symlink := e.Type == TypeSymlink
	if len(e.Xattrs) > 0 {
		if err := writeXattrs(dst, symlink, e.Xattrs); err != nil {
			rs.fail(e.Path, fmt.Errorf("extended attributes: %w", err))
		}
	}
	if rs.opts.Owner {
		uid, gid := int(e.UID), int(e.GID)
		if e.User != "" {
			if id := rs.ids.users.get(e.User); id >= 0 {
				uid = id
			}
		}
		if e.Group != "" {
			if id := rs.ids.groups.get(e.Group); id >= 0 {
				gid = id
			}
		}
		if err := os.Lchown(dst, uid, gid); err != nil {
			rs.fail(e.Path, fmt.Errorf("ownership: %w", err))
		}
	}
	if err := setModeAndTimes(dst, &e); err != nil {
		rs.fail(e.Path, err)
	}
}

// finished reports whether dst already holds the complete file e.
func finished(dst string, e *Entry) bool {
	info, err := os.Lstat(dst)
	if err != nil || !info.Mode().IsRegular() {
		return false
	}
	st, ok := statOf(info)
	return ok && info.Size() == e.Size && st.mtimeNs == e.MtimeNs
}
