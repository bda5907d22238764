package vmware

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// tagBatch is how many VMs one attached-tags query names, so that a big
// inventory does not make one huge request.
const tagBatch = 1000

// vmTags returns the tags of the given VMs as "category:tag", sorted, by
// moref value. Tags live in vCenter's vAPI tagging service, reached over
// REST with a session of its own. An endpoint without it (a plain ESXi)
// has no tags, which is not an error; a tagging service that is there but
// fails is, since selection by tag must not silently see none.
//
// The calls: one login, one attached-tags query per tagBatch VMs, then one
// lookup per distinct tag and per distinct category in use, and a logout.
func (c *Client) vmTags(ctx context.Context, refs []types.ManagedObjectReference) (map[string][]string, error) {
	if len(refs) == 0 || !c.vc.IsVC() || c.login == nil {
		return nil, nil
	}
	password, _ := c.login.Password()
	fail := func(what string, err error) error {
		return fmt.Errorf("vsphere: reading tags: %s: %s", what, scrub(err.Error(), password))
	}
	rc := rest.NewClient(c.vc)
	if err := rc.Login(ctx, c.login); err != nil {
		switch {
		case rest.IsStatusError(err, http.StatusNotFound), rest.IsStatusError(err, http.StatusNotImplemented):
			return nil, nil
		case rest.IsStatusError(err, http.StatusUnauthorized), rest.IsStatusError(err, http.StatusForbidden):
			return nil, fmt.Errorf("%w (user %q, at the vAPI tagging endpoint)", ErrBadCredentials, c.login.Username())
		}
		return nil, fail("logging in to the vAPI endpoint", err)
	}
	defer func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		rc.Logout(lctx)
	}()
	m := tags.NewManager(rc)

	attached := map[string][]string{} // moref value -> tag ids
	for start := 0; start < len(refs); start += tagBatch {
		var objs []mo.Reference
		for _, r := range refs[start:min(start+tagBatch, len(refs))] {
			objs = append(objs, r)
		}
		res, err := m.ListAttachedTagsOnObjects(ctx, objs)
		if err != nil {
			return nil, fail("listing attached tags", err)
		}
		for _, a := range res {
			if a.ObjectID != nil && len(a.TagIDs) > 0 {
				ref := a.ObjectID.Reference().Value
				attached[ref] = append(attached[ref], a.TagIDs...)
			}
		}
	}

	names := map[string]string{}      // tag id -> "category:tag"
	categories := map[string]string{} // category id -> name
	for _, ids := range attached {
		for _, id := range ids {
			if _, done := names[id]; done {
				continue
			}
			t, err := m.GetTag(ctx, id)
			if rest.IsStatusError(err, http.StatusNotFound) {
				// Deleted since the listing: no longer attached.
				names[id] = ""
				continue
			}
			if err != nil {
				return nil, fail("reading tag "+id, err)
			}
			cat, ok := categories[t.CategoryID]
			if !ok {
				ct, err := m.GetCategory(ctx, t.CategoryID)
				switch {
				case rest.IsStatusError(err, http.StatusNotFound):
				case err != nil:
					return nil, fail("reading tag category "+t.CategoryID, err)
				default:
					cat = ct.Name
				}
				categories[t.CategoryID] = cat
			}
			names[id] = ""
			if cat != "" {
				names[id] = cat + ":" + t.Name
			}
		}
	}

	out := make(map[string][]string, len(attached))
	for ref, ids := range attached {
		seen := map[string]bool{}
		for _, id := range ids {
			if n := names[id]; n != "" && !seen[n] {
				seen[n] = true
				out[ref] = append(out[ref], n)
			}
		}
		sort.Strings(out[ref])
	}
	return out, nil
}
