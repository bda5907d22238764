package nas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// DefaultWriters is how many files a restore writes to a NAS at once.
const DefaultWriters = 4

// DefaultReconnectFor is how long a restore waits for a NAS that dropped
// its connection before it gives up (and its job is retried, resuming).
const DefaultReconnectFor = 10 * time.Minute

// RestoreOptions configure one restore into a share.
type RestoreOptions struct {
	// Target is the directory inside the share that stands for the
	// point's share root: "" puts every entry back where it was.
	Target string
	// Paths limits the restore to these manifest paths and everything
	// below them; empty restores everything. Include and Exclude narrow
	// it by glob, as engine/files restores do.
	Paths            []string
	Include, Exclude []string
	// Conflict is what to do with a file that exists at the destination:
	// files.ConflictOverwrite (the default), ConflictSkip or
	// ConflictRename (the restored file becomes "name.restored-N").
	Conflict string
	// Alternate says the destination is not where the point was taken
	// (another share, or a Target): security descriptors then follow
	// Inherit's rule instead of being restored byte for byte.
	Alternate bool
	// Resume says an earlier attempt of this restore may have finished
	// some files: a file already at its destination with the entry's size
	// and modification time is taken as restored (a file reaches its
	// final name only once whole, and gets its times last).
	Resume bool
	// Writers bounds files written at once (DefaultWriters if 0).
	Writers int
	// Dial connects to the target share; the restore calls it again
	// after a lost connection, for up to ReconnectFor
	// (DefaultReconnectFor if 0), and goes on from the file it was
	// writing.
	Dial         Dialer
	ReconnectFor time.Duration
	Warn         func(path string, err error)
	Progress     func(files, bytes int64)
}

// RestoreStats summarise a restore.
type RestoreStats struct {
	Files, Dirs, Symlinks, Bytes, Skipped int64
	// Resumed counts files an earlier attempt had restored; Reconnects
	// the times the connection to the NAS was lost and made again.
	Resumed, Reconnects int64
	Failed              []string
}

// Restore restores a point of a share into the share opts.Dial reaches,
// reading chunks from src. Each file is written under a temporary name
// beside its destination, its chunks checked against their ids as they
// arrive, then renamed into place and given its metadata, times last. A
// lost connection stops the writers until the NAS answers again; the file
// each was writing is then written again from its start, and nothing
// finished is written twice. Directories get their metadata once their
// contents are in place, deepest first. Entries that fail alone are
// named in Failed and the restore ends with files.ErrIncomplete.
func Restore(ctx context.Context, src files.Source, root format.ID, opts RestoreOptions) (RestoreStats, error) {
	if opts.Conflict == "" {
		opts.Conflict = files.ConflictOverwrite
	}
	if !slices.Contains([]string{files.ConflictOverwrite, files.ConflictSkip, files.ConflictRename}, opts.Conflict) {
		return RestoreStats{}, fmt.Errorf("conflict policy %q: want overwrite, skip or rename", opts.Conflict)
	}
	target, err := cleanSharePath(opts.Target)
	if err != nil {
		return RestoreStats{}, fmt.Errorf("target: %w", err)
	}
	if opts.Dial == nil {
		return RestoreStats{}, errors.New("no share to restore into")
	}
	if opts.ReconnectFor <= 0 {
		opts.ReconnectFor = DefaultReconnectFor
	}
	if opts.Writers <= 0 {
		opts.Writers = DefaultWriters
	}
	share, err := opts.Dial(ctx)
	if err != nil {
		return RestoreStats{}, err
	}
	rs := &restorer{src: src, root: root, opts: opts, target: target,
		conn: &connection{share: share, dial: opts.Dial, wait: opts.ReconnectFor, warn: opts.Warn},
		sds:  map[string][]byte{}, made: map[string]bool{}, handles: map[string]openDir{}, ctx: ctx}
	defer func() { rs.conn.close() }()
	if err := rs.checkSpace(ctx); err != nil {
		return RestoreStats{}, err
	}
	err = rs.run(ctx)
	rs.stats.Reconnects = rs.conn.reconnects.Load()
	rs.stats.Failed = rs.failed
	if err == nil && len(rs.failed) > 0 {
		err = fmt.Errorf("%w: %d entries failed", files.ErrIncomplete, len(rs.failed))
	}
	return rs.stats, err
}

type restorer struct {
	src    files.Source
	root   format.ID
	opts   RestoreOptions
	target string
	conn   *connection

	mu     sync.Mutex
	stats  RestoreStats
	failed []string
	// sds are the descriptors directories have (or will have) at the
	// destination, for their children's inheritance; made are the
	// directories this restore created (true) or found (false).
	sds  map[string][]byte
	made map[string]bool
	// dirs get their metadata at the end, deepest first; handles are
	// those of them still open since this restore made them (DirMaker),
	// with the share they are open on.
	dirs    []dirMeta
	handles map[string]openDir
	// ctx is the restore's context, for the handles kept open.
	ctx context.Context
}

// openDir is a directory handle and the share it is open on: it is good
// only while that share is the restore's connection.
type openDir struct {
	dir   MetaDir
	share Share
}

// maxOpenDirs bounds the directory handles a restore keeps open; the
// directories made beyond it are given their metadata by name.
const maxOpenDirs = 1024

type dirMeta struct {
	dst  string
	meta Meta
}

// selected tells whether a manifest entry is restored.
func (rs *restorer) selected(p string) bool {
	if len(rs.opts.Paths) > 0 && !slices.ContainsFunc(rs.opts.Paths, func(q string) bool {
		q = strings.Trim(q, "/")
		return q == "" || q == "." || p == q || strings.HasPrefix(p, q+"/")
	}) {
		return false
	}
	if p != "." && files.MatchAnyAbove(rs.opts.Exclude, p) {
		return false
	}
	return len(rs.opts.Include) == 0 || files.MatchAnyAbove(rs.opts.Include, p)
}

// dest is where a manifest path lands in the target share.
func (rs *restorer) dest(p string) string {
	p = sharePath(p)
	switch {
	case rs.target == "":
		return p
	case p == "":
		return rs.target
	}
	return rs.target + "/" + p
}

func (rs *restorer) fail(p string, err error) {
	rs.mu.Lock()
	rs.failed = append(rs.failed, p)
	rs.mu.Unlock()
	if rs.opts.Warn != nil {
		rs.opts.Warn(p, err)
	}
}

// checkSpace refuses a restore the share has no room for, before any byte
// moves.
func (rs *restorer) checkSpace(ctx context.Context) error {
	var need int64
	err := rs.walk(ctx, false, func(e files.Entry) error {
		if e.Type == files.TypeFile {
			need += e.Size
		}
		return nil
	})
	if err != nil {
		return err
	}
	free, err := rs.conn.current().Free(ctx)
	if err != nil {
		return fmt.Errorf("reading the share's free space: %w", err)
	}
	if uint64(need) > free {
		return fmt.Errorf("the target share has %d bytes free, the restore needs %d", free, need)
	}
	return nil
}

// walk calls fn with each selected entry of the point, in walk order;
// report says to name the entries it cannot restore.
func (rs *restorer) walk(ctx context.Context, report bool, fn func(e files.Entry) error) error {
	m, err := repo.OpenManifest(ctx, rs.src, rs.root)
	if err != nil {
		return fmt.Errorf("reading the point: %w", err)
	}
	for {
		var e files.Entry
		err := m.Next(&e)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the point: %w", err)
		}
		if !validPath(e.Path) {
			if report {
				rs.fail(e.Path, errors.New("not a clean relative path: skipped"))
			}
			continue
		}
		if rs.selected(e.Path) {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

func validPath(p string) bool {
	if p == "." {
		return true
	}
	_, err := cleanSharePath(p)
	return err == nil && !strings.HasPrefix(p, "/")
}

func (rs *restorer) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan files.Entry, rs.opts.Writers)
	for range rs.opts.Writers {
		g.Go(func() error {
			for e := range work {
				if err := rs.file(gctx, e); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		return rs.walk(gctx, true, func(e files.Entry) error {
			switch e.Type {
			case files.TypeDir:
				return rs.dir(gctx, e)
			case files.TypeFile:
				if err := rs.parents(gctx, rs.dest(e.Path)); err != nil {
					return err
				}
				select {
				case work <- e:
					return nil
				case <-gctx.Done():
					return gctx.Err()
				}
			case files.TypeSymlink:
				return rs.symlink(gctx, e)
			default:
				rs.fail(e.Path, fmt.Errorf("a %s cannot be restored onto a NAS share", e.Type))
				return nil
			}
		})
	})
	if err := g.Wait(); err != nil {
		return err
	}
	return rs.dirMetas(ctx)
}

// dirMetas gives the directories their metadata, last because writing
// their contents changed their times, and deepest first because a
// directory's descriptor may keep the account out of it. The directories
// of one depth are independent of each other, so each depth is done
// Writers at a time: one at a time, a tree of many small directories
// spent most of its restore's tail waiting on round trips.
func (rs *restorer) dirMetas(ctx context.Context) error {
	byDepth := map[int][]dirMeta{}
	deepest := -1
	for _, d := range rs.dirs {
		depth := 0
		if d.dst != "" {
			depth = 1 + strings.Count(d.dst, "/")
		}
		byDepth[depth] = append(byDepth[depth], d)
		deepest = max(deepest, depth)
	}
	for depth := deepest; depth >= 0; depth-- {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(rs.opts.Writers)
		for _, d := range byDepth[depth] {
			g.Go(func() error {
				err := rs.conn.do(gctx, func(s Share) error {
					if h, ok := rs.takeHandle(d.dst); ok && h.share == s {
						return rs.metaDone(d.dst, h.dir.SetMetaClose(d.meta))
					}
					return rs.setMeta(gctx, s, d.dst, d.meta)
				})
				if err != nil && gctx.Err() == nil && !IsConnectionLost(err) {
					rs.fail(d.dst, fmt.Errorf("setting its metadata: %w", err))
					return nil
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	// Directories above the target that this restore made have no entry
	// of their own: their handles are closed as they are.
	for dir := range rs.handles {
		if h, ok := rs.takeHandle(dir); ok && h.share == rs.conn.current() {
			_ = h.dir.Close()
		}
	}
	return nil
}

// takeHandle removes and returns dir's open handle, if it has one.
func (rs *restorer) takeHandle(dir string) (openDir, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	h, ok := rs.handles[dir]
	delete(rs.handles, dir)
	return h, ok
}

// parents makes the directories above dst that do not exist yet (a
// restore of a single file, or into a new target directory).
func (rs *restorer) parents(ctx context.Context, dst string) error {
	dir := parentDir(dst)
	if _, known := rs.madeHere(dir); known || dir == "" {
		return nil
	}
	if err := rs.parents(ctx, dir); err != nil {
		return err
	}
	if err := rs.mkdir(ctx, dir, nil); err != nil {
		return rs.fatal(ctx, dir, err)
	}
	return nil
}

// mkdir makes the directory dir, and records whether this restore created
// it: in a directory it created, nothing was there to protect. Below a
// directory it created, a directory is surely new; elsewhere it is
// looked at first. sd is the descriptor the directory will be given, nil
// if it has none or gets none of its own (a DirMaker may create the
// directory with it).
func (rs *restorer) mkdir(ctx context.Context, dir string, sd []byte) error {
	created, _ := rs.madeHere(parentDir(dir))
	err := rs.conn.do(ctx, func(s Share) error {
		if !created {
			if _, err := s.Stat(ctx, dir); err == nil {
				return nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			created = true
		}
		rs.mu.Lock()
		room := len(rs.handles) < maxOpenDirs
		rs.mu.Unlock()
		if dm, ok := s.(DirMaker); ok && room {
			// The handle outlives the walk, whose context ends before
			// directories get their metadata: it is opened with the
			// restore's own.
			h, err := dm.MkdirOpen(rs.ctx, dir, sd)
			if h != nil {
				rs.mu.Lock()
				rs.handles[dir] = openDir{dir: h, share: s}
				rs.mu.Unlock()
			}
			return err
		}
		return s.Mkdir(ctx, dir)
	})
	if err != nil {
		return err
	}
	rs.mu.Lock()
	rs.made[dir] = created
	rs.mu.Unlock()
	return nil
}

// inFresh tells whether dst's directory is one this restore created.
func (rs *restorer) inFresh(dst string) bool {
	fresh, _ := rs.madeHere(parentDir(dst))
	return fresh
}

// madeHere says whether this restore created dir (fresh), and whether it
// has made or found it at all (known).
func (rs *restorer) madeHere(dir string) (fresh, known bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	fresh, known = rs.made[dir]
	return fresh, known
}

// parentDir is the directory of the share path p, "" for the share's
// root.
func parentDir(p string) string {
	if dir := path.Dir(p); dir != "." {
		return dir
	}
	return ""
}

// fatal turns an error that ends the restore (the job's context ended, or
// the NAS did not come back) into the restore's error; any other is left
// for the caller to report as the entry's.
func (rs *restorer) fatal(ctx context.Context, p string, err error) error {
	if ctx.Err() != nil || IsConnectionLost(err) {
		return err
	}
	return fmt.Errorf("%s: %w", p, err)
}

func (rs *restorer) dir(ctx context.Context, e files.Entry) error {
	dst := rs.dest(e.Path)
	if err := rs.parents(ctx, dst); err != nil {
		return err
	}
	meta, merr := rs.meta(ctx, e, dst, true)
	if dst != "" {
		if err := rs.mkdir(ctx, dst, meta.SD); err != nil {
			if ctx.Err() != nil || IsConnectionLost(err) {
				return err
			}
			rs.fail(e.Path, err)
			return nil
		}
	}
	if merr != nil {
		rs.fail(e.Path, merr)
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.stats.Dirs++
	if rs.opts.Alternate && dst == rs.target && !rs.made[dst] {
		// Restored elsewhere into a directory that was there already
		// (a share's root, say), the point's top directory gives its
		// contents, not its own owner, descriptor or mode: those are the
		// destination's, and its children inherit from them.
		return nil
	}
	rs.sds[dst] = meta.SD
	rs.dirs = append(rs.dirs, dirMeta{dst: dst, meta: meta})
	return nil
}

// meta is what a restored entry is given: its recorded metadata, with
// its descriptor under the alternate-location rule where that applies.
func (rs *restorer) meta(ctx context.Context, e files.Entry, dst string, dir bool) (Meta, error) {
	m := Meta{
		Type: e.Type, Size: e.Size, MtimeNs: e.MtimeNs, AtimeNs: e.AtimeNs, CtimeNs: e.CtimeNs, BtimeNs: e.BtimeNs,
		Mode: e.Mode, UID: e.UID, GID: e.GID, Attrs: e.WinAttrs, SD: e.SD,
	}
	if !rs.opts.Alternate || e.SD == nil {
		return m, nil
	}
	parent, err := rs.parentSD(ctx, dst)
	if err != nil {
		return Meta{}, err
	}
	if m.SD, err = Inherit(e.SD, parent, dir); err != nil {
		return Meta{}, fmt.Errorf("its security descriptor: %w", err)
	}
	return m, nil
}

// parentSD is the descriptor dst's parent has at the destination: the one
// this restore gives it, or the one the share reports.
func (rs *restorer) parentSD(ctx context.Context, dst string) ([]byte, error) {
	if dst == "" {
		return nil, nil // the share's root has no parent to inherit from
	}
	dir := parentDir(dst)
	rs.mu.Lock()
	sd, ok := rs.sds[dir]
	rs.mu.Unlock()
	if ok {
		return sd, nil
	}
	var info Info
	err := rs.conn.do(ctx, func(s Share) (err error) { info, err = s.Stat(ctx, dir); return err })
	if err != nil {
		return nil, fmt.Errorf("reading the security descriptor of %s: %w", dir, err)
	}
	rs.mu.Lock()
	rs.sds[dir] = info.SD
	rs.mu.Unlock()
	return info.SD, nil
}

func (rs *restorer) symlink(ctx context.Context, e files.Entry) error {
	dst := rs.dest(e.Path)
	if err := rs.parents(ctx, dst); err != nil {
		return err
	}
	err := rs.conn.do(ctx, func(s Share) error {
		if _, err := s.Stat(ctx, dst); err == nil {
			if rs.opts.Conflict == files.ConflictSkip {
				return errSkipped
			}
			if err := s.Remove(ctx, dst); err != nil {
				return err
			}
		}
		if err := s.Symlink(ctx, e.Target, dst); err != nil {
			return err
		}
		return rs.setMeta(ctx, s, dst, Meta{Type: e.Type, Mode: e.Mode, UID: e.UID, GID: e.GID, MtimeNs: e.MtimeNs, AtimeNs: e.AtimeNs})
	})
	switch {
	case errors.Is(err, errSkipped):
		rs.count(func(s *RestoreStats) { s.Skipped++ })
	case err != nil && (ctx.Err() != nil || IsConnectionLost(err)):
		return err
	case err != nil:
		rs.fail(e.Path, err)
	default:
		rs.count(func(s *RestoreStats) { s.Symlinks++ })
	}
	return nil
}

var errSkipped = errors.New("skipped: it exists")

func (rs *restorer) count(f func(*RestoreStats)) {
	rs.mu.Lock()
	f(&rs.stats)
	rs.mu.Unlock()
}

// file restores one regular file, again from its start after a lost
// connection.
func (rs *restorer) file(ctx context.Context, e files.Entry) error {
	dst := rs.dest(e.Path)
	meta, err := rs.meta(ctx, e, dst, false)
	if err != nil {
		if ctx.Err() != nil || IsConnectionLost(err) {
			return err
		}
		rs.fail(e.Path, err)
		return nil
	}
	var resumed bool
	err = rs.conn.do(ctx, func(s Share) error {
		var err error
		resumed, err = rs.writeFile(ctx, s, e, dst, meta)
		return err
	})
	switch {
	case errors.Is(err, errSkipped):
		rs.count(func(s *RestoreStats) { s.Skipped++ })
	case err != nil && (ctx.Err() != nil || IsConnectionLost(err)):
		return err
	case err != nil:
		rs.fail(e.Path, err)
	default:
		rs.mu.Lock()
		if resumed {
			rs.stats.Resumed++
		}
		rs.stats.Files++
		rs.stats.Bytes += e.Size
		n, b := rs.stats.Files, rs.stats.Bytes
		rs.mu.Unlock()
		if rs.opts.Progress != nil {
			rs.opts.Progress(n, b)
		}
	}
	return nil
}

// tempName is where a file is written until it is whole: a hidden name
// beside its destination, the same on every attempt, so that a retried
// restore overwrites a torn copy instead of leaving it behind.
func tempName(dst string) string {
	return path.Join(parentDir(dst), files.TempBase(path.Base(dst)))
}

// writeFile writes e's content to dst through s, or says it need not: it
// is already there (resumed), or the conflict policy skips it.
func (rs *restorer) writeFile(ctx context.Context, s Share, e files.Entry, dst string, meta Meta) (resumed bool, err error) {
	if rs.opts.Conflict == files.ConflictOverwrite && rs.inFresh(dst) {
		// In a directory this restore made there is nothing to protect
		// from a torn copy: the file is written in place, which saves the
		// NAS a stat, a rename and a second stat per file. A torn copy
		// left by a dead attempt has not got its times, so a retried
		// restore writes it again (and finds the directory not new).
		return false, rs.writeTo(ctx, s, e, dst, dst, meta)
	}
	if old, err := s.Stat(ctx, dst); err == nil {
		switch {
		case rs.opts.Resume && old.Type == TypeFile && old.Size == e.Size && old.MtimeNs == e.MtimeNs:
			return true, nil
		case rs.opts.Conflict == files.ConflictSkip:
			return false, errSkipped
		case rs.opts.Conflict == files.ConflictRename:
			if dst, err = freeName(ctx, s, dst); err != nil {
				return false, err
			}
		case old.Attrs&AttrReadOnly != 0:
			// A read-only file cannot be replaced over SMB until it is
			// not read-only any more.
			if err := s.SetMeta(ctx, dst, Meta{Type: old.Type, Attrs: old.Attrs &^ AttrReadOnly}); err != nil {
				return false, err
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return false, rs.writeTo(ctx, s, e, tempName(dst), dst, meta)
}

// writeTo writes e's content to tmp, moves it to dst unless tmp is dst,
// and gives it its metadata, times last. The size the share reports must
// be the entry's.
func (rs *restorer) writeTo(ctx context.Context, s Share, e files.Entry, tmp, dst string, meta Meta) error {
	if mc, ok := s.(MetaCreator); ok && tmp == dst {
		err := rs.writeWithMeta(ctx, s, mc, e, dst, meta)
		if !errors.Is(err, errNoMetaHandle) {
			return err
		}
	}
	f, err := s.Create(ctx, tmp)
	if err != nil {
		return err
	}
	werr := rs.content(ctx, f, e)
	size := int64(-1)
	if hs, ok := f.(HandleStat); ok && werr == nil {
		var info Info
		info, werr = hs.StatHandle()
		size = info.Size
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		if !IsConnectionLost(werr) && tmp != dst {
			_ = s.Remove(ctx, tmp)
		}
		return werr
	}
	if err := checkSize(ctx, s, tmp, size, e.Size); err != nil {
		return err
	}
	if tmp != dst {
		if err := s.Rename(ctx, tmp, dst); err != nil {
			return err
		}
	}
	return rs.setMeta(ctx, s, dst, meta)
}

// errNoMetaHandle says a share refused CreateMeta for want of a right.
var errNoMetaHandle = errors.New("the share refused a handle that sets metadata")

// writeWithMeta writes e's content in place at dst through a handle that
// also gives it its metadata (MetaCreator), times last as writeTo does,
// and checks the size the share reports as the handle closes. Where the
// share refuses such a handle for want of a right it returns
// errNoMetaHandle, and writeTo goes the long way.
func (rs *restorer) writeWithMeta(ctx context.Context, s Share, mc MetaCreator, e files.Entry, dst string, meta Meta) error {
	f, err := mc.CreateMeta(ctx, dst, meta)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) && !IsConnectionLost(err) {
			return errNoMetaHandle
		}
		return err
	}
	if err := rs.content(ctx, f, e); err != nil {
		_ = f.Close()
		return err
	}
	size, err := f.Commit()
	if err := rs.metaDone(dst, err); err != nil {
		return err
	}
	return checkSize(ctx, s, dst, size, e.Size)
}

// checkSize checks that the file p the share holds is want bytes long:
// size, as its handle reported it, or, if that is -1, as the share says.
func checkSize(ctx context.Context, s Share, p string, size, want int64) error {
	if size < 0 {
		info, err := s.Stat(ctx, p)
		if err != nil {
			return err
		}
		size = info.Size
	}
	if size != want {
		return fmt.Errorf("%w: the share holds %d bytes of it, the point %d", files.ErrWrongBytes, size, want)
	}
	return nil
}

// setMeta applies an entry's metadata. What the NAS refuses for want of a
// right (an owner a proxy that is not root may not give, a descriptor the
// account may not write) is a warning: the content is restored, and the
// share's own rules decide the rest.
func (rs *restorer) setMeta(ctx context.Context, s Share, dst string, m Meta) error {
	return rs.metaDone(dst, s.SetMeta(ctx, dst, m))
}

// metaDone is what setting dst's metadata ended with: a refusal for want
// of a right is only a warning.
func (rs *restorer) metaDone(dst string, err error) error {
	if err != nil && errors.Is(err, fs.ErrPermission) && !IsConnectionLost(err) {
		if rs.opts.Warn != nil {
			rs.opts.Warn(dst, fmt.Errorf("restored, but not all of its metadata: %w", err))
		}
		return nil
	}
	return err
}

// freeName is the first "dst.restored-N" that does not exist.
func freeName(ctx context.Context, s Share, dst string) (string, error) {
	for i := 1; ; i++ {
		name := files.Renamed(dst, i)
		_, err := s.Stat(ctx, name)
		if errors.Is(err, fs.ErrNotExist) {
			return name, nil
		}
		if err != nil {
			return "", err
		}
	}
}

// Chunks are loaded and written a batch at a time: one index lookup for
// many chunks, and a bounded buffer per writer.
const restoreBatchBytes = 16 << 20

// batchBuffers hold a batch of a file's chunks on their way to the NAS.
var batchBuffers = freelist.List[*[]byte]{New: func() *[]byte { return new([]byte) }, Max: 16}

// content writes e's chunks to f. The source hands over only bytes that
// hash to their ids (files.Source), so what is written is what the point
// holds; each chunk's length is checked against the entry's.
func (rs *restorer) content(ctx context.Context, f File, e files.Entry) error {
	bufp := batchBuffers.Get()
	defer batchBuffers.Put(bufp)
	var (
		off   int64
		ids   []format.ID
		refs  []files.ChunkRef
		batch int64
	)
	flush := func() error {
		if len(refs) == 0 {
			return nil
		}
		if int64(cap(*bufp)) < batch {
			*bufp = make([]byte, restoreBatchBytes)
		}
		buf := (*bufp)[:batch]
		if len(ids) < len(refs) {
			clear(buf) // the batch has holes: zeros where they are
		}
		offs := make([]int64, len(refs))
		var o int64
		for i, r := range refs {
			offs[i] = o
			o += r.Len
		}
		var bad atomic.Value
		if len(ids) > 0 {
			pos := make([]int, 0, len(ids))
			for i, r := range refs {
				if !r.Hole {
					pos = append(pos, i)
				}
			}
			err := rs.src.Load(ctx, ids, func(i int, data []byte) error {
				r := refs[pos[i]]
				if int64(len(data)) != r.Len {
					bad.Store(fmt.Errorf("%w: chunk %s", files.ErrWrongBytes, r.ID))
					return nil
				}
				copy(buf[offs[pos[i]]:], data)
				return nil
			})
			if err != nil {
				return fmt.Errorf("reading the repository: %w", err)
			}
			if err, ok := bad.Load().(error); ok {
				return err
			}
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
		off += batch
		ids, refs, batch = ids[:0], refs[:0], 0
		return nil
	}
	for _, r := range e.Chunks {
		if batch+r.Len > restoreBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if r.Len > restoreBatchBytes {
			return fmt.Errorf("a chunk of %d bytes is larger than a restore batch", r.Len)
		}
		refs = append(refs, r)
		if !r.Hole {
			ids = append(ids, r.ID)
		}
		batch += r.Len
	}
	if err := flush(); err != nil {
		return err
	}
	if off != e.Size {
		return fmt.Errorf("%w: the point's chunks hold %d bytes, its entry %d", files.ErrWrongBytes, off, e.Size)
	}
	return nil
}

// connection is the restore's connection to the share, made again when
// the NAS drops it.
type connection struct {
	mu         sync.Mutex
	share      Share
	gen        int
	dial       Dialer
	wait       time.Duration
	reconnects atomic.Int64
	warn       func(string, error)
}

func (c *connection) current() Share {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.share
}

func (c *connection) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.share != nil {
		_ = c.share.Close()
	}
}

// do runs fn on the current share; when the connection is lost it waits
// for a new one and runs fn again from its start.
func (c *connection) do(ctx context.Context, fn func(Share) error) error {
	for {
		c.mu.Lock()
		s, gen := c.share, c.gen
		c.mu.Unlock()
		err := fn(s)
		if err == nil || !IsConnectionLost(err) || ctx.Err() != nil {
			return err
		}
		if err := c.reconnect(ctx, gen); err != nil {
			return err
		}
	}
}

// reconnect replaces the share of generation gen (unless another worker
// did already), trying with backoff until c.wait is up.
func (c *connection) reconnect(ctx context.Context, gen int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return nil
	}
	_ = c.share.Close()
	start := time.Now()
	deadline := start.Add(c.wait)
	delay := 100 * time.Millisecond
	for {
		s, err := c.dial(ctx)
		if err == nil {
			c.share, c.gen = s, c.gen+1
			n := c.reconnects.Add(1)
			if c.warn != nil {
				c.warn("", fmt.Errorf("the connection to the NAS was lost; connected again after %s (reconnection %d) and resumed: finished files are kept, the files being written are written again from their start",
					time.Since(start).Round(time.Millisecond), n))
			}
			return nil
		}
		if time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("%w, and it did not come back within %s: %v", ErrConnectionLost, c.wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
