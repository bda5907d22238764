package nas

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"golang.org/x/time/rate"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// DefaultReaders is how many files a capture reads from a NAS at once: a
// read over the network waits on round trips far more than on the disk,
// so more files in flight than cores keep the link busy, and a bound
// keeps the NAS, which serves its users meanwhile, from being swamped.
const DefaultReaders = 8

// CaptureOptions configure one backup of a share.
type CaptureOptions struct {
	// Path is the directory inside the share to back up ("" for the whole
	// share). Entries are named by their path from the share's root, and
	// the directories above Path are recorded too.
	Path string
	// Include, when not empty, keeps only files matching one of these
	// globs (engine/files syntax, matched against "/"+path and the base
	// name, or a directory above the file); directories are always
	// recorded, so a restore recreates the tree. Exclude leaves out what
	// matches, and a matching directory is not descended into.
	Include, Exclude []string
	// Parent is the previous point's root, for incremental reuse: a file
	// whose size, modification and change times, file id and attributes
	// are unchanged is recorded with the parent's chunks, unread.
	Parent format.ID
	// Readers bounds the files read at once (DefaultReaders if 0).
	Readers int
	// ReadLimit caps the bytes per second read from the NAS (the policy's
	// bandwidth cap), nil for none.
	ReadLimit *rate.Limiter
	// Source names the share in the point ("smb://nas/projects").
	Source   string
	Warn     func(path string, err error)
	Progress func(files.CaptureProgress)
	Totals   bool
}

// Capture backs up a share into sink; the parent's manifest is read from
// src. The caller commits the root. Entries the share cannot describe or
// read are left out with a warning; a lost connection ends the capture
// (the next attempt reuses what this one uploaded).
func Capture(ctx context.Context, sink repo.Sink, src repo.Source, share Share, opts CaptureOptions) (format.ID, files.CaptureStats, error) {
	base, err := cleanSharePath(opts.Path)
	if err != nil {
		return format.ID{}, files.CaptureStats{}, fmt.Errorf("path: %w", err)
	}
	for _, g := range append(slices.Clone(opts.Include), opts.Exclude...) {
		if !files.ValidGlob(g) {
			return format.ID{}, files.CaptureStats{}, fmt.Errorf("invalid glob %q", g)
		}
	}
	if ok, why := share.SACL(); !ok && share.Protocol() == SMB && opts.Warn != nil {
		opts.Warn("", errors.New(why))
	}
	readers := opts.Readers
	if readers <= 0 {
		readers = DefaultReaders
	}
	tree := &shareTree{share: share, base: base, include: opts.Include, exclude: opts.Exclude, source: opts.Source, limit: opts.ReadLimit}
	return files.CaptureTree(ctx, sink, src, tree, files.CaptureOptions{
		Parent: opts.Parent, Workers: readers, Warn: opts.Warn, Progress: opts.Progress, Totals: opts.Totals,
	})
}

// cleanSharePath checks a path inside a share: slash-separated, relative
// to the share's root, with no "." or ".." components.
func cleanSharePath(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" || p == "." {
		return "", nil
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("%q is not a clean path inside the share", p)
		}
	}
	return p, nil
}

// manifestPath is how a path inside the share is named in the manifest:
// "." for the share's root.
func manifestPath(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// sharePath undoes manifestPath.
func sharePath(p string) string {
	if p == "." {
		return ""
	}
	return p
}

// shareTree is a share as a capture reads it (engine/files.Tree).
type shareTree struct {
	share            Share
	base             string
	include, exclude []string
	source           string
	limit            *rate.Limiter
}

func (t *shareTree) Source() string { return t.source }

func (t *shareTree) Walk(ctx context.Context, warn func(string, error), take func(e files.Entry, src any) (bool, error)) error {
	// The share's root and the directories above the base come first,
	// without their other contents.
	above := []string{""}
	if t.base != "" {
		parts := strings.Split(t.base, "/")
		for i := 1; i < len(parts); i++ {
			above = append(above, strings.Join(parts[:i], "/"))
		}
	}
	for _, p := range above {
		if p == t.base {
			break
		}
		info, err := t.share.Stat(ctx, p)
		if err != nil {
			return fmt.Errorf("%s: %w", manifestPath(p), err)
		}
		if _, err := take(entryOf(p, info), nil); err != nil {
			return err
		}
	}
	info, err := t.share.Stat(ctx, t.base)
	if err != nil {
		return fmt.Errorf("%s: %w", manifestPath(t.base), err)
	}
	return t.visit(ctx, warn, take, t.base, info)
}

func (t *shareTree) visit(ctx context.Context, warn func(string, error), take func(e files.Entry, src any) (bool, error), p string, info Info) error {
	descend, err := take(entryOf(p, info), p)
	if err != nil || !descend {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	children, err := t.share.ReadDir(ctx, p)
	if err != nil {
		if IsConnectionLost(err) {
			return err
		}
		warn(manifestPath(p), err)
		return nil
	}
	slices.SortFunc(children, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range children {
		child := path.Join(p, c.Name)
		if p == "" {
			child = c.Name
		}
		switch {
		case files.MatchAny(t.exclude, "/"+child):
			continue
		case c.Type != TypeDir && len(t.include) > 0 && !files.MatchAnyAbove(t.include, child):
			continue
		}
		if c.Err != nil {
			warn(child, c.Err)
			if c.Type == TypeSymlink {
				continue // a link without its target is nothing to restore
			}
		}
		if err := t.visit(ctx, warn, take, child, c); err != nil {
			return err
		}
	}
	return nil
}

// entryOf is a share entry as a manifest line.
func entryOf(p string, in Info) files.Entry {
	e := files.Entry{
		Path: manifestPath(p), Type: in.Type, Mode: in.Mode, UID: in.UID, GID: in.GID,
		MtimeNs: in.MtimeNs, AtimeNs: in.AtimeNs, CtimeNs: in.CtimeNs, BtimeNs: in.BtimeNs,
		Inode: in.FileID, WinAttrs: in.Attrs, SD: in.SD, Target: in.Target,
	}
	if in.Type == TypeFile {
		e.Size = in.Size
	}
	return e
}

func (t *shareTree) Open(ctx context.Context, e *files.Entry, src any) (files.TreeFile, error) {
	p := src.(string)
	f, err := t.share.Open(ctx, p)
	if err != nil {
		return nil, err
	}
	return &shareFile{ctx: ctx, tree: t, path: p, f: f}, nil
}

// shareFile is a share's file open for a capture.
type shareFile struct {
	ctx  context.Context
	tree *shareTree
	path string
	f    File
}

func (f *shareFile) ReadAt(b []byte, off int64) (int, error) {
	if l := f.tree.limit; l != nil {
		// Wait for the bytes in bursts the limiter allows.
		for left := len(b); left > 0; {
			n := min(left, l.Burst())
			if err := l.WaitN(f.ctx, n); err != nil {
				return 0, err
			}
			left -= n
		}
	}
	return f.f.ReadAt(b, off)
}

func (f *shareFile) Restat() (size, mtimeNs, ctimeNs int64, err error) {
	var info Info
	if hs, ok := f.f.(HandleStat); ok {
		info, err = hs.StatHandle()
	} else {
		info, err = f.tree.share.Stat(f.ctx, f.path)
	}
	if err != nil {
		return 0, 0, 0, err
	}
	return info.Size, info.MtimeNs, info.CtimeNs, nil
}

func (f *shareFile) Close() error { return f.f.Close() }
