package repo

import (
	"context"
	"io"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/pathtext"
)

// refEntry is what every manifest entry shares, whatever its workload: an
// optional path and the chunks it references, either as a list or as one
// id, or a nested manifest (a VM point lists one disk manifest per disk).
// Workload packages keep their entries compatible with it, which lets GC
// and verify walk any manifest without knowing its kind.
//
// A path that is not UTF-8 is in path_raw (see engine/files); it is
// reported Go-quoted.
type refEntry struct {
	Path     string    `json:"path"`
	PathRaw  []byte    `json:"path_raw"`
	ID       format.ID `json:"id,omitzero"`
	Manifest format.ID `json:"manifest,omitzero"`
	Chunks   []struct {
		ID format.ID `json:"id,omitzero"`
	} `json:"chunks"`
}

// PointChunks is the set of chunk ids a point's tree references (see
// walkRefs), for a caller that may read only that point.
func (r *Repository) PointChunks(ctx context.Context, root format.ID) (map[format.ID]bool, error) {
	set := map[format.ID]bool{}
	err := r.walkRefs(ctx, root, func(id format.ID, _ string) error {
		set[id] = true
		return nil
	})
	return set, err
}

// walkRefs calls fn with every chunk a point references: its root, its tree
// chunks, and every chunk its entries name (with the entry's path), nested
// manifests included. Zero ids (holes) are skipped.
func (r *Repository) walkRefs(ctx context.Context, root format.ID, fn func(id format.ID, path string) error) error {
	return r.walkManifest(ctx, root, "", fn)
}

func (r *Repository) walkManifest(ctx context.Context, root format.ID, prefix string, fn func(id format.ID, path string) error) error {
	if err := fn(root, prefix); err != nil {
		return err
	}
	m, err := r.OpenManifest(ctx, root)
	if err != nil {
		return err
	}
	for _, t := range m.Root.Tree {
		if err := fn(t, prefix); err != nil {
			return err
		}
	}
	for {
		var e refEntry
		err := m.Next(&e)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if e.PathRaw != nil {
			e.Path = pathtext.Show(string(e.PathRaw))
		}
		switch {
		case prefix != "" && e.Path != "":
			e.Path = prefix + "/" + e.Path
		case prefix != "":
			e.Path = prefix
		}
		if !e.Manifest.IsZero() {
			if err := r.walkManifest(ctx, e.Manifest, e.Path, fn); err != nil {
				return err
			}
		}
		if !e.ID.IsZero() {
			if err := fn(e.ID, e.Path); err != nil {
				return err
			}
		}
		for _, c := range e.Chunks {
			if !c.ID.IsZero() {
				if err := fn(c.ID, e.Path); err != nil {
					return err
				}
			}
		}
	}
}
