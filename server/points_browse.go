package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/vmimage"
	"github.com/havenbackup/terraform-provider-haven/internal/pathtext"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/auth"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// Browsing recovery points: a point's entries (a files point's tree, a VM
// point's disks), one file's bytes, which points hold a path, and what
// changed between two points. All of it reads the points' manifests
// through the repository; nothing is restored or written.
//
// Who may browse: names and bytes of files are the protected data
// itself, so a group admin browses only the points of its groups' assets
// (as it restores only those); every other reading role browses every
// point. The route gate lets every reading role through (readInGroup
// rows), mayBrowse applies the group.

// Bounds on the work one request does.
const (
	// findPointsDefault and findPointsMax bound the points one page of a
	// find examines, newest first.
	findPointsDefault = 20
	findPointsMax     = 100
	// findMatchesPerPoint bounds the entries listed for one point.
	findMatchesPerPoint = 100
)

// browsablePoint reads a live point the caller may browse.
func (s *Server) browsablePoint(r *http.Request, field, id string) (api.Point, error) {
	p, err := s.db.GetPoint(r.Context(), id)
	if errors.Is(err, db.ErrNotFound) || err == nil && p.DeletedAt != nil {
		e := api.NotFound("recovery point", id)
		e.Field = field
		return p, e
	}
	if err != nil {
		return p, err
	}
	return p, s.mayBrowse(r, p.AssetID)
}

// mayBrowse refuses a group admin the points of another group's asset
// (live or deleted; an asset without a group is not any group admin's).
func (s *Server) mayBrowse(r *http.Request, assetID string) error {
	p := auth.FromContext(r.Context())
	if p == nil || p.Role != api.RoleGroupAdmin {
		return nil
	}
	ref, err := s.assetSpecRef(r, assetID)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	if p.InGroup(ref.Group) {
		return nil
	}
	return &api.Error{Code: api.CodeForbidden, Status: http.StatusForbidden,
		Message: fmt.Sprintf("role %s may only browse recovery points of its administrative groups' assets %v", p.Role, p.Groups)}
}

// openedPoint is a point's repository, root and manifest kind.
type openedPoint struct {
	api.Point
	repo *repo.Repository
	root format.ID
	kind string
}

func (s *Server) openPoint(ctx context.Context, p api.Point) (*openedPoint, error) {
	rp, err := s.jobs.repos.Open(ctx, p.StorageID, nil)
	if err != nil {
		return nil, err
	}
	root, err := rp.Root(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	mr, err := rp.ReadRoot(ctx, root)
	if err != nil {
		return nil, err
	}
	return &openedPoint{Point: p, repo: rp, root: root, kind: mr.Kind}, nil
}

// notFiles is the answer for a VM point where a files point is needed.
func notFiles(field string, op *openedPoint) *api.Error {
	return api.Unprocessable(field, "recovery point %s is a %s point: it holds disks, not files (its entries list them)", op.ID, op.kind)
}

// pathParam reads a path as entries show it (absolute, Go-quoted when not
// UTF-8) into the manifest's form.
func pathParam(field, shown string) (string, error) {
	p, err := files.ManifestPath(shown)
	if err != nil {
		return "", api.FieldError(field, "must be an absolute path as backed up (Go-quoted if it is not UTF-8): %v", err)
	}
	return p, nil
}

// pathCursor is the page token of the browsing listings: the last
// entry's path as shown, which is valid text whatever its bytes.
func pathCursor(manifestPath string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(files.ShowPath(manifestPath)))
}

// pathPage reads the page parameters of a listing in path order: the
// limit, and the cursor (see pathCursor) as a manifest path.
func pathPage(r *http.Request) (int, string, error) {
	limit, token, err := pageParams(r)
	if err != nil || token == "" {
		return limit, "", err
	}
	after, err := files.ManifestPath(token)
	if err != nil {
		return 0, "", badPageToken()
	}
	return limit, after, nil
}

// fileEntry presents a manifest entry.
func fileEntry(e *files.Entry) *api.PointEntry {
	mtime := time.Unix(0, e.MtimeNs).UTC()
	out := &api.PointEntry{Path: files.ShowPath(e.Path), Type: e.Type, Size: e.Size, Mode: api.FormatMode(e.Mode), Mtime: &mtime}
	switch e.Type {
	case files.TypeSymlink:
		out.Target = pathtext.Show(e.Target)
	case files.TypeHardlink:
		out.Target = files.ShowPath(e.Target)
	}
	return out
}

func (s *Server) pointEntries(w http.ResponseWriter, r *http.Request) {
	p, err := s.browsablePoint(r, "id", r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	shown := q.Get("path")
	if shown == "" {
		shown = "/"
	}
	dir, err := pathParam("path", shown)
	if err != nil {
		writeError(w, r, err)
		return
	}
	recursive := false
	if v := q.Get("recursive"); v != "" {
		if recursive, err = strconv.ParseBool(v); err != nil {
			writeError(w, r, api.FieldError("recursive", "must be true or false, got %q", v))
			return
		}
	}
	limit, after, err := pathPage(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	op, err := s.openPoint(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if op.kind == vmimage.ManifestKind {
		if dir != "." {
			writeError(w, r, api.Unprocessable("path", "recovery point %s is a VM point: its entries are its disks, with no path below them", p.ID))
			return
		}
		s.listDisks(w, r, op, after, limit)
		return
	}
	if op.kind != files.ManifestKind {
		writeError(w, r, api.Unprocessable("id", "recovery point %s is a %s point, which cannot be browsed", p.ID, op.kind))
		return
	}
	list, more, err := files.List(r.Context(), op.repo, op.root, files.ListOptions{Dir: dir, Recursive: recursive, After: after, Limit: limit})
	if errors.Is(err, files.ErrNoSuchPath) {
		err = &api.Error{Code: api.CodeNotFound, Status: http.StatusNotFound, Field: "path",
			Message: fmt.Sprintf("recovery point %s holds nothing at %s", p.ID, shown)}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := api.List[api.PointEntry]{Items: make([]api.PointEntry, 0, len(list))}
	for i := range list {
		out.Items = append(out.Items, *fileEntry(&list[i]))
	}
	if more {
		out.NextPageToken = pathCursor(list[len(list)-1].Path)
	}
	writeJSON(w, http.StatusOK, out)
}

// listDisks answers a VM point's entries: its disks, in the point's order.
func (s *Server) listDisks(w http.ResponseWriter, r *http.Request, op *openedPoint, after string, limit int) {
	disks, _, err := vmimage.ReadPoint(r.Context(), op.repo, op.root)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := api.List[api.PointEntry]{Items: []api.PointEntry{}}
	passed := after == ""
	for _, d := range disks {
		if !passed {
			passed = d.Path == after
			continue
		}
		if len(out.Items) == limit {
			out.NextPageToken = pathCursor(out.Items[len(out.Items)-1].Path)
			break
		}
		out.Items = append(out.Items, api.PointEntry{Path: d.Path, Type: "disk", Size: d.CapacityBytes,
			DiskKey: d.Key, Label: d.Label, CapacityBytes: d.CapacityBytes})
	}
	writeJSON(w, http.StatusOK, out)
}

// pointContent streams one file of a point. Status and headers are
// settled before the first byte; a failure while streaming (a damaged
// chunk) aborts the connection, so the client sees a short body against
// Content-Length rather than a file that seems whole.
func (s *Server) pointContent(w http.ResponseWriter, r *http.Request) {
	p, err := s.browsablePoint(r, "id", r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	shown := r.URL.Query().Get("path")
	if shown == "" {
		writeError(w, r, api.FieldError("path", "is required: the file's absolute path as backed up"))
		return
	}
	fp, err := pathParam("path", shown)
	if err != nil {
		writeError(w, r, err)
		return
	}
	op, err := s.openPoint(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if op.kind != files.ManifestKind {
		writeError(w, r, notFiles("id", op))
		return
	}
	e, err := files.Lookup(r.Context(), op.repo, op.root, fp)
	if errors.Is(err, files.ErrNoSuchPath) {
		err = &api.Error{Code: api.CodeNotFound, Status: http.StatusNotFound, Field: "path",
			Message: fmt.Sprintf("recovery point %s holds nothing at %s", p.ID, shown)}
	}
	if err == nil && e.Type != files.TypeFile {
		err = api.Unprocessable("path", "%s is a %s in recovery point %s, not a file", shown, e.Type, p.ID)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(e.Size, 10))
	w.Header().Set("Content-Disposition", "attachment; filename="+strconv.QuoteToASCII(path.Base(fp)))
	w.WriteHeader(http.StatusOK)
	if _, err := files.WriteContent(r.Context(), op.repo, e, w); err != nil {
		s.log.ErrorContext(r.Context(), "streaming a point's file failed", "point", p.ID, "path", shown, "error", err.Error())
		panic(http.ErrAbortHandler)
	}
}

// findInPoints answers which points, newest first, hold entries matching
// a glob. A page examines at most limit points (default 20, at most 100)
// and lists at most 100 entries of each, so one request's work is
// bounded however many points there are; its token is the last examined
// point's, so a page may list nothing and still have a next one.
func (s *Server) findInPoints(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pattern := q.Get("pattern")
	if !api.ValidGlob(pattern) {
		writeError(w, r, api.FieldError("pattern", "must be a glob (path.Match syntax, plus ** and {a,b}), got %q", pattern))
		return
	}
	_, token, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	limit := findPointsDefault
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > findPointsMax {
			writeError(w, r, api.FieldError("limit", "is the number of points a page examines: a whole number from 1 to %d, got %q", findPointsMax, v))
			return
		}
	}
	before, beforeID, err := parseTimeCursor(token)
	if err != nil {
		writeError(w, r, err)
		return
	}
	f := api.PointFilter{AssetID: q.Get("asset_id")}
	if f.AssetID != "" && !uuidPattern.MatchString(f.AssetID) {
		_, o, err := s.db.AssetObject(r.Context(), f.AssetID)
		if err != nil {
			writeError(w, r, api.FieldError("asset_id", "no asset %q", f.AssetID))
			return
		}
		f.AssetID = o.ID
	}
	if f.AssetID != "" {
		if err := s.mayBrowse(r, f.AssetID); err != nil {
			writeError(w, r, err)
			return
		}
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, r, api.FieldError("since", "must be an RFC 3339 time, got %q", v))
			return
		}
		f.CreatedAfter = &t
	}
	points, err := s.db.ListPoints(r.Context(), f, before, beforeID, limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := api.List[api.PointMatches]{Items: []api.PointMatches{}}
	if len(points) > limit {
		points = points[:limit]
		last := points[limit-1]
		out.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(timeCursor(last.CompletedAt, last.ID)))
	}
	for _, p := range points {
		if s.mayBrowse(r, p.AssetID) != nil {
			continue // another group's: not the caller's to search
		}
		op, err := s.openPoint(r.Context(), p)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if op.kind != files.ManifestKind {
			if f.AssetID != "" {
				writeError(w, r, notFiles("asset_id", op))
				return
			}
			continue // a VM point: nothing to match
		}
		found, more, err := files.Find(r.Context(), op.repo, op.root, []string{pattern}, "", findMatchesPerPoint)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if len(found) == 0 {
			continue
		}
		m := api.PointMatches{PointID: p.ID, AssetID: p.AssetID, CompletedAt: p.CompletedAt, MoreEntries: more}
		for i := range found {
			m.Entries = append(m.Entries, *fileEntry(&found[i]))
		}
		out.Items = append(out.Items, m)
	}
	writeJSON(w, http.StatusOK, out)
}

// diffPoints answers what changed from one files point to another of the
// same storage (chunk ids are keyed per storage, so only there do equal
// ids mean equal content).
func (s *Server) diffPoints(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var opened [2]*openedPoint
	for i, field := range []string{"from", "to"} {
		id := q.Get(field)
		if id == "" {
			writeError(w, r, api.FieldError(field, "is required: a recovery point id"))
			return
		}
		p, err := s.browsablePoint(r, field, id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if opened[i], err = s.openPoint(r.Context(), p); err != nil {
			writeError(w, r, err)
			return
		}
		if opened[i].kind != files.ManifestKind {
			writeError(w, r, notFiles(field, opened[i]))
			return
		}
	}
	from, to := opened[0], opened[1]
	if from.StorageID != to.StorageID {
		writeError(w, r, api.Unprocessable("to", "recovery points %s and %s are in different storages; a diff compares points of one storage", from.ID, to.ID))
		return
	}
	limit, after, err := pathPage(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	changes, more, err := files.Diff(r.Context(), from.repo, from.root, to.root, after, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := api.List[api.PointChange]{Items: make([]api.PointChange, 0, len(changes))}
	for _, c := range changes {
		pc := api.PointChange{Change: c.Kind, Path: files.ShowPath(c.Path())}
		if c.From != nil {
			pc.From = fileEntry(c.From)
		}
		if c.To != nil {
			pc.To = fileEntry(c.To)
		}
		out.Items = append(out.Items, pc)
	}
	if more {
		out.NextPageToken = pathCursor(changes[len(changes)-1].Path())
	}
	writeJSON(w, http.StatusOK, out)
}
