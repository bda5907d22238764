package files

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/pathtext"
)

// Browsing reads a point's manifest without restoring it: listing a
// directory, finding paths by glob, comparing two points, and streaming
// one file's bytes. A manifest is a stream in walk order (ComparePaths),
// so every read here scans it from the start and stops as soon as it has
// passed what it looks for; pages are keyset cursors over that order (the
// manifest path of the last entry returned), so a page costs one scan up
// to its end and no state is kept between pages.

// ManifestKind is the root kind of a files point.
const ManifestKind = "files"

// Browsing errors.
var (
	// ErrNoSuchPath: the point holds no entry at the path.
	ErrNoSuchPath = errors.New("no such path in the recovery point")
	// ErrNotAFile: content was asked of an entry that is not a file.
	ErrNotAFile = errors.New("not a regular file")
	// ErrNotFilesPoint: the point is not a files point (a VM point).
	ErrNotFilesPoint = errors.New("not a files recovery point")
)

// ManifestPath reads a path as ShowPath writes it (absolute, Go-quoted
// when not UTF-8) into the manifest's form: no leading "/", "." for "/".
func ManifestPath(shown string) (string, error) {
	p, err := pathtext.Parse(shown)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%s is not an absolute path", shown)
	}
	p = strings.Trim(p, "/")
	if p == "" {
		return ".", nil
	}
	if !validPath(p) {
		return "", fmt.Errorf("%s is not a clean path", shown)
	}
	return p, nil
}

// below reports whether p is inside directory dir (not dir itself).
func below(dir, p string) bool {
	if dir == "." {
		return p != "."
	}
	return strings.HasPrefix(p, dir+"/")
}

// childOf reports whether p is directly in directory dir.
func childOf(dir, p string) bool {
	if !below(dir, p) {
		return false
	}
	if dir != "." {
		p = p[len(dir)+1:]
	}
	return !strings.Contains(p, "/")
}

// openFiles opens a point's manifest, refusing any other kind.
func openFiles(ctx context.Context, src repo.Source, root format.ID) (*repo.ManifestReader, error) {
	m, err := repo.OpenManifest(ctx, src, root)
	if err != nil {
		return nil, err
	}
	if m.Root.Kind != ManifestKind {
		return nil, fmt.Errorf("%w: its manifest is of kind %q", ErrNotFilesPoint, m.Root.Kind)
	}
	return m, nil
}

// ListOptions select a page of List.
type ListOptions struct {
	// Dir is the manifest path listed (see ManifestPath).
	Dir string
	// Recursive lists every entry below Dir, not only its children.
	Recursive bool
	// After is the cursor: the manifest path of the previous page's last
	// entry; empty for the first page.
	After string
	// Limit bounds the page; 0 means no bound.
	Limit int
}

// List returns the entries in Dir in walk order, a page at a time, and
// whether more follow. Dir naming an entry that is not a directory lists
// that entry alone; a Dir the point lacks is ErrNoSuchPath.
func List(ctx context.Context, src repo.Source, root format.ID, o ListOptions) ([]Entry, bool, error) {
	m, err := openFiles(ctx, src, root)
	if err != nil {
		return nil, false, err
	}
	var out []Entry
	found := o.Dir == "." // the root is there even in a manifest that does not record it
	for {
		var e Entry
		if err := m.Next(&e); err == io.EOF {
			break
		} else if err != nil {
			return nil, false, err
		}
		if e.Path == o.Dir {
			found = true
			if e.Type != TypeDir {
				if o.After != "" {
					return nil, false, nil
				}
				return []Entry{e}, false, nil
			}
			continue
		}
		if e.Path == "." {
			continue
		}
		if !below(o.Dir, e.Path) {
			if found || ComparePaths(e.Path, o.Dir) > 0 {
				break // past the directory: its entries are contiguous
			}
			continue
		}
		if !o.Recursive && !childOf(o.Dir, e.Path) || o.After != "" && ComparePaths(e.Path, o.After) <= 0 {
			continue
		}
		if o.Limit > 0 && len(out) == o.Limit {
			return out, true, nil
		}
		out = append(out, e)
	}
	if !found {
		return nil, false, fmt.Errorf("%s: %w", ShowPath(o.Dir), ErrNoSuchPath)
	}
	return out, false, nil
}

// Find returns the entries whose absolute path or base name matches any
// of patterns (see glob.go), in walk order after the cursor after, at
// most limit of them (0: no bound), and whether more follow.
func Find(ctx context.Context, src repo.Source, root format.ID, patterns []string, after string, limit int) ([]Entry, bool, error) {
	m, err := openFiles(ctx, src, root)
	if err != nil {
		return nil, false, err
	}
	var out []Entry
	for {
		var e Entry
		if err := m.Next(&e); err == io.EOF {
			return out, false, nil
		} else if err != nil {
			return nil, false, err
		}
		if e.Path == "." || after != "" && ComparePaths(e.Path, after) <= 0 || !MatchAny(patterns, "/"+e.Path) {
			continue
		}
		if limit > 0 && len(out) == limit {
			return out, true, nil
		}
		out = append(out, e)
	}
}

// Kinds of Change.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// Change is one difference between two points: an entry only the newer
// one has (To), only the older one has (From), or one both have that
// differs in type, size, modification time, mode, link target or content
// chunks.
type Change struct {
	Kind     string
	From, To *Entry
}

// Path is the changed entry's manifest path.
func (c Change) Path() string {
	if c.To != nil {
		return c.To.Path
	}
	return c.From.Path
}

// differ reports whether an entry changed between two points.
func differ(a, b *Entry) bool {
	return a.Type != b.Type || a.Size != b.Size || a.MtimeNs != b.MtimeNs || a.Mode != b.Mode ||
		a.Target != b.Target || !slices.Equal(a.Chunks, b.Chunks)
}

// Diff compares two files points, both manifests read side by side in
// walk order: the changes after the cursor after, at most limit of them
// (0: no bound), and whether more follow.
func Diff(ctx context.Context, src repo.Source, from, to format.ID, after string, limit int) ([]Change, bool, error) {
	ma, err := openFiles(ctx, src, from)
	if err != nil {
		return nil, false, err
	}
	mb, err := openFiles(ctx, src, to)
	if err != nil {
		return nil, false, err
	}
	next := func(m *repo.ManifestReader) (*Entry, error) {
		var e Entry
		if err := m.Next(&e); err == io.EOF {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		return &e, nil
	}
	a, err := next(ma)
	if err != nil {
		return nil, false, err
	}
	b, err := next(mb)
	if err != nil {
		return nil, false, err
	}
	var out []Change
	for a != nil || b != nil {
		var c Change
		advanceA, advanceB := false, false
		switch cmp := comparePresent(a, b); {
		case cmp < 0:
			c, advanceA = Change{Kind: Removed, From: a}, true
		case cmp > 0:
			c, advanceB = Change{Kind: Added, To: b}, true
		default:
			advanceA, advanceB = true, true
			if differ(a, b) {
				c = Change{Kind: Changed, From: a, To: b}
			}
		}
		if c.Kind != "" && c.Path() != "." && (after == "" || ComparePaths(c.Path(), after) > 0) {
			if limit > 0 && len(out) == limit {
				return out, true, nil
			}
			out = append(out, c)
		}
		if advanceA {
			if a, err = next(ma); err != nil {
				return nil, false, err
			}
		}
		if advanceB {
			if b, err = next(mb); err != nil {
				return nil, false, err
			}
		}
	}
	return out, false, nil
}

// comparePresent orders two entries of a merge, an exhausted side (nil)
// after everything.
func comparePresent(a, b *Entry) int {
	switch {
	case a == nil:
		return 1
	case b == nil:
		return -1
	case a.Path == b.Path:
		return 0
	case a.Path == ".":
		return -1 // the root comes first in every manifest
	case b.Path == ".":
		return 1
	}
	return ComparePaths(a.Path, b.Path)
}

// Lookup returns the entry at a manifest path. A hardlink comes back as
// the entry holding its content (the first name of its inode), under the
// link's own path.
func Lookup(ctx context.Context, src repo.Source, root format.ID, p string) (Entry, error) {
	e, err := lookup(ctx, src, root, p)
	if err != nil || e.Type != TypeHardlink {
		return e, err
	}
	first, err := lookup(ctx, src, root, e.Target)
	if err != nil {
		return e, fmt.Errorf("hardlink %s: its target %s: %w", ShowPath(p), ShowPath(e.Target), err)
	}
	first.Path = e.Path
	return first, nil
}

func lookup(ctx context.Context, src repo.Source, root format.ID, p string) (Entry, error) {
	m, err := openFiles(ctx, src, root)
	if err != nil {
		return Entry{}, err
	}
	for {
		var e Entry
		if err := m.Next(&e); err == io.EOF {
			break
		} else if err != nil {
			return Entry{}, err
		}
		if e.Path == p {
			return e, nil
		}
		if e.Path != "." && ComparePaths(e.Path, p) > 0 {
			break
		}
	}
	return Entry{}, fmt.Errorf("%s: %w", ShowPath(p), ErrNoSuchPath)
}

// Content is streamed in batches of chunks: one load (a few coalesced
// reads) per batch, the batch's chunks held until they are written in
// order, so memory stays bounded for any file size.
const (
	contentBatchChunks = 256
	contentBatchBytes  = 32 << 20
)

// WriteContent streams a file entry's bytes to w in order, holes as
// zeros. Every chunk is checked as a restore checks what it wrote: its
// length against the manifest, and its bytes against its id under the
// storage's id key (ErrWrongBytes otherwise), so w never receives a byte
// that is not the point's. It returns the bytes written.
func WriteContent(ctx context.Context, src Source, e Entry, w io.Writer) (int64, error) {
	if e.Type != TypeFile {
		return 0, fmt.Errorf("%s is a %s: %w", ShowPath(e.Path), e.Type, ErrNotAFile)
	}
	var written int64
	chunks := e.Chunks
	for len(chunks) > 0 {
		n, size := 0, int64(0)
		for n < len(chunks) && n < contentBatchChunks && (n == 0 || size+chunks[n].Len <= contentBatchBytes) {
			size += chunks[n].Len
			n++
		}
		batch := chunks[:n]
		chunks = chunks[n:]
		var ids []format.ID
		var at []int // batch position of each id
		for i, c := range batch {
			if !c.Hole {
				ids = append(ids, c.ID)
				at = append(at, i)
			}
		}
		data := make([][]byte, len(batch))
		err := src.Load(ctx, ids, func(k int, b []byte) error {
			c := batch[at[k]]
			if int64(len(b)) != c.Len {
				return fmt.Errorf("%w: chunk %s holds %d bytes, the manifest says %d", ErrWrongBytes, c.ID.Short(), len(b), c.Len)
			}
			if got := src.Hash(b); got != c.ID {
				return fmt.Errorf("%w: chunk %s hashes to %s", ErrWrongBytes, c.ID.Short(), got.Short())
			}
			data[at[k]] = bytes.Clone(b)
			return nil
		})
		if err != nil {
			return written, fmt.Errorf("%s: %w", ShowPath(e.Path), err)
		}
		for i, c := range batch {
			var n int64
			var err error
			if c.Hole {
				n, err = io.CopyN(w, zeroReader{}, c.Len)
			} else {
				var k int
				k, err = w.Write(data[i])
				n = int64(k)
			}
			written += n
			if err != nil {
				return written, err
			}
		}
	}
	if written != e.Size {
		return written, fmt.Errorf("%s: %w: the manifest's chunks cover %d bytes of %d", ShowPath(e.Path), ErrWrongBytes, written, e.Size)
	}
	return written, nil
}

// zeroReader reads zeros, for the holes of a file's content.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
