package files

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// What a dry run says a restore would do with one entry.
const (
	// PlanWrite: nothing is at the destination; the entry is created.
	PlanWrite = "write"
	// PlanOverwrite: something is there and the overwrite policy replaces it.
	PlanOverwrite = "overwrite"
	// PlanSkip: something is there and the skip policy leaves it.
	PlanSkip = "skip"
	// PlanRename: something is there; the entry is written beside it
	// under a .restored-N name (Dest).
	PlanRename = "rename"
	// PlanRefused: the destination is outside where the restore may write
	// (Reason says why); the restore would fail this entry.
	PlanRefused = "refused"
)

// PlanItem is one entry of a dry run.
type PlanItem struct {
	// Path is the entry's path in the point, as ShowPath writes it.
	Path string
	Type string
	// Dest is where it would be written; empty for a plan computed
	// against the point only.
	Dest   string
	Action string
	// Bytes is what writing it moves: a file's size, else 0.
	Bytes  int64
	Reason string
}

// RestorePlan is a dry run of a restore: what it would write, overwrite,
// rename or skip, and the bytes it would write. Existing directories the
// restore would only write into are not listed.
type RestorePlan struct {
	Items []PlanItem
	// Truncated: more entries were planned than Items holds; the counts
	// and Bytes cover them all.
	Truncated                                    bool
	Writes, Overwrites, Renames, Skips, Refusals int64
	Bytes                                        int64
}

// PlanRestore is a dry run of Restore with the same options: it reads the
// point's manifest and, unless opts.Target is empty, looks at what stands
// at each destination under the conflict policy, and writes nothing. An
// empty Target plans against the point alone: every entry is a write (for
// a target this process cannot see, such as an agent's host). At most
// limit items are listed (0: all).
func PlanRestore(ctx context.Context, r Source, root format.ID, opts RestoreOptions, limit int) (*RestorePlan, error) {
	if opts.Conflict == "" {
		opts.Conflict = ConflictOverwrite
	}
	if !slices.Contains([]string{ConflictOverwrite, ConflictSkip, ConflictRename}, opts.Conflict) {
		return nil, fmt.Errorf("conflict policy %q: want overwrite, skip or rename", opts.Conflict)
	}
	pointOnly := opts.Target == ""
	if !pointOnly && opts.Target != "/" && !filepath.IsAbs(opts.Target) {
		return nil, fmt.Errorf("restore target %q is not an absolute path on this host", opts.Target)
	}
	m, err := repo.OpenManifest(ctx, r, root)
	if err != nil {
		return nil, err
	}
	rs, err := newRestorer(r, root, opts)
	if err != nil {
		return nil, err
	}
	plan := &RestorePlan{}
	err = rs.walkSelection(m, func(e Entry, sel selection) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		item := PlanItem{Path: ShowPath(e.Path), Type: e.Type, Action: PlanWrite}
		if e.Type == TypeFile {
			item.Bytes = e.Size
		}
		if !pointOnly {
			if e.Path == "." {
				return nil // the target itself
			}
			item.Dest = rs.dest(e.Path)
			if !rs.planAt(&item, e) {
				return nil
			}
		} else if e.Path == "." || sel == aboveSelected {
			return nil // directories a restore only creates on the way
		}
		plan.add(item, limit)
		return nil
	})
	return plan, err
}

// planAt decides an item against what stands at its destination, as the
// restore's conflict policy and confinement would; false leaves it out
// (an existing directory, written into).
func (rs *restorer) planAt(item *PlanItem, e Entry) bool {
	if c := rs.opts.Confine; c != nil {
		if e.Type == TypeDir && c.Above(item.Dest) {
			return false
		}
		check := c.CheckEntry
		if e.Type == TypeDir {
			check = c.Check
		}
		if err := check(item.Dest); err != nil {
			item.Action, item.Reason, item.Bytes = PlanRefused, err.Error(), 0
			return true
		}
	}
	if _, err := os.Lstat(item.Dest); err != nil {
		return true
	}
	if e.Type == TypeDir {
		return false
	}
	switch rs.opts.Conflict {
	case ConflictSkip:
		item.Action, item.Bytes = PlanSkip, 0
	case ConflictRename:
		item.Action = PlanRename
		for i := 1; ; i++ {
			if alt := Renamed(item.Dest, i); !exists(alt) {
				item.Dest = alt
				break
			}
		}
	default:
		item.Action = PlanOverwrite
	}
	return true
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func (p *RestorePlan) add(item PlanItem, limit int) {
	switch item.Action {
	case PlanWrite:
		p.Writes++
	case PlanOverwrite:
		p.Overwrites++
	case PlanRename:
		p.Renames++
	case PlanSkip:
		p.Skips++
	case PlanRefused:
		p.Refusals++
	}
	p.Bytes += item.Bytes
	if limit > 0 && len(p.Items) == limit {
		p.Truncated = true
		return
	}
	p.Items = append(p.Items, item)
}
