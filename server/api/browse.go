package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// PointEntry is one entry of a recovery point: a file-tree entry of a
// files point, or (Type "disk") one disk of a VM point.
type PointEntry struct {
	// Path is absolute as backed up, Go-quoted when it is not valid UTF-8
	// ("\"/data/x_\\xff.txt\""), as restore paths take it; a VM disk's is
	// its name in the point ("disk-2000").
	Path string `json:"path"`
	// Type is file, dir, symlink, hardlink, fifo, chardev, blockdev or disk.
	Type string `json:"type"`
	Size int64  `json:"size"`
	// Mode is the permission and set-id/sticky bits in octal ("0644").
	Mode  string     `json:"mode,omitempty"`
	Mtime *time.Time `json:"mtime,omitempty"`
	// Target is a symlink's target, or the path a hardlink shares its
	// content with (written as Path is).
	Target string `json:"target,omitempty"`
	// A VM disk's device key, label and capacity.
	DiskKey       int32  `json:"disk_key,omitempty"`
	Label         string `json:"label,omitempty"`
	CapacityBytes int64  `json:"capacity_bytes,omitempty"`
}

// Kinds of PointChange.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
	ChangeChanged = "changed"
)

// PointChange is one difference between two points: an entry added,
// removed, or changed (size, modification time, mode, link target or
// content differ). From is the entry in the older point, To in the newer.
type PointChange struct {
	Change string      `json:"change"`
	Path   string      `json:"path"`
	From   *PointEntry `json:"from,omitempty"`
	To     *PointEntry `json:"to,omitempty"`
}

// PointMatches are the entries of one point that a find matched.
type PointMatches struct {
	PointID     string       `json:"point_id"`
	AssetID     string       `json:"asset_id"`
	CompletedAt time.Time    `json:"completed_at"`
	Entries     []PointEntry `json:"entries"`
	// MoreEntries: the point holds more matches than Entries lists; a find
	// with asset_id and a narrower pattern, or the point's entries
	// listing, shows them.
	MoreEntries bool `json:"more_entries,omitempty"`
}

// Actions of a RestorePlanItem.
const (
	PlanWrite     = "write"
	PlanOverwrite = "overwrite"
	PlanSkip      = "skip"
	PlanRename    = "rename"
	PlanRefused   = "refused"
)

// PlanItemsMax bounds the items a dry run lists; its counts cover all.
const PlanItemsMax = 10000

// RestorePlan is a restore's dry run: what it would write, overwrite,
// rename or skip under its conflict policy, and the bytes it would write.
// Nothing is written.
type RestorePlan struct {
	PointID string            `json:"point_id"`
	Items   []RestorePlanItem `json:"items"`
	// Truncated: more entries were planned than Items lists; the counts
	// and Bytes cover them all.
	Truncated  bool  `json:"truncated,omitempty"`
	Writes     int64 `json:"writes"`
	Overwrites int64 `json:"overwrites"`
	Renames    int64 `json:"renames"`
	Skips      int64 `json:"skips"`
	Refusals   int64 `json:"refusals"`
	Bytes      int64 `json:"bytes"`
}

// Validate checks a plan an agent reports (field names it, as "plan").
func (p *RestorePlan) Validate(field string) *Error {
	if len(p.Items) > PlanItemsMax {
		return FieldError(field+".items", "lists %d items; a plan lists at most %d (set truncated)", len(p.Items), PlanItemsMax)
	}
	for _, c := range []struct {
		name  string
		value int64
	}{{"writes", p.Writes}, {"overwrites", p.Overwrites}, {"renames", p.Renames}, {"skips", p.Skips}, {"refusals", p.Refusals}, {"bytes", p.Bytes}} {
		if c.value < 0 {
			return FieldError(field+"."+c.name, "must not be negative, got %d", c.value)
		}
	}
	for i, it := range p.Items {
		at := fmt.Sprintf("%s.items[%d]", field, i)
		switch it.Action {
		case PlanWrite, PlanOverwrite, PlanSkip, PlanRename, PlanRefused:
		default:
			return FieldError(at+".action", "must be write, overwrite, skip, rename or refused, got %q", it.Action)
		}
		if it.Bytes < 0 {
			return FieldError(at+".bytes", "must not be negative, got %d", it.Bytes)
		}
		if it.Path == "" {
			return FieldError(at+".path", "is required")
		}
	}
	return nil
}

// RestorePlanItem is one entry of a dry run.
type RestorePlanItem struct {
	Path string `json:"path"`
	Type string `json:"type"`
	// Dest is where it would be written; empty when the plan was computed
	// against the point only.
	Dest   string `json:"dest,omitempty"`
	Action string `json:"action"`
	Bytes  int64  `json:"bytes"`
	Reason string `json:"reason,omitempty"`
}

// EntriesQuery selects a page of a point's entries.
type EntriesQuery struct {
	// Path is the directory listed (default "/"); a file lists itself.
	Path      string
	Recursive bool
}

// PointEntries lists the entries under a path of a files point, or the
// disks of a VM point.
func (c *Client) PointEntries(ctx context.Context, pointID string, q EntriesQuery, pageToken string, limit int) (*List[PointEntry], error) {
	v := pageQuery(pageToken, limit)
	if q.Path != "" {
		v.Set("path", q.Path)
	}
	if q.Recursive {
		v.Set("recursive", "true")
	}
	var out List[PointEntry]
	err := c.do(ctx, http.MethodGet, "/v1/points/"+url.PathEscape(pointID)+"/entries", v, nil, &out, requestOptions{})
	return &out, err
}

// PointContent streams one file of a files point. The caller closes it.
func (c *Client) PointContent(ctx context.Context, pointID, path string) (io.ReadCloser, error) {
	return c.Stream(ctx, http.MethodGet, "/v1/points/"+url.PathEscape(pointID)+"/content?"+url.Values{"path": {path}}.Encode(), nil, "")
}

// FindQuery is what a find looks for.
type FindQuery struct {
	// Pattern is a glob (doublestar syntax) matched against each entry's
	// absolute path and its base name.
	Pattern string
	// AssetID (an id or a name) narrows the find to one asset's points.
	AssetID string
	// Since narrows it to points completed at or after this time.
	Since *time.Time
}

// FindInPoints lists which points, newest first, hold entries matching a
// pattern. A page examines at most limit points (see the API document),
// so a page may list none and still have a next one.
func (c *Client) FindInPoints(ctx context.Context, q FindQuery, pageToken string, limit int) (*List[PointMatches], error) {
	v := pageQuery(pageToken, limit)
	v.Set("pattern", q.Pattern)
	if q.AssetID != "" {
		v.Set("asset_id", q.AssetID)
	}
	if q.Since != nil {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	var out List[PointMatches]
	err := c.do(ctx, http.MethodGet, "/v1/points/find", v, nil, &out, requestOptions{})
	return &out, err
}

// DiffPoints lists the entries added, removed and changed from one point
// to another.
func (c *Client) DiffPoints(ctx context.Context, from, to string, pageToken string, limit int) (*List[PointChange], error) {
	v := pageQuery(pageToken, limit)
	v.Set("from", from)
	v.Set("to", to)
	var out List[PointChange]
	err := c.do(ctx, http.MethodGet, "/v1/points/diff", v, nil, &out, requestOptions{})
	return &out, err
}

// PlanRestore is a restore's dry run (the request with dry_run set): what
// it would do, with nothing written. Onto the Haven host the plan comes at
// once; onto an agent's host the answer is the restore_plan job that
// computes it there (plan nil): wait for the job, then read JobPlan.
func (c *Client) PlanRestore(ctx context.Context, req RestoreRequest) (*RestorePlan, *Job, error) {
	req.DryRun = true
	var raw json.RawMessage
	status := 0
	if err := c.do(ctx, http.MethodPost, "/v1/restores", nil, req, &raw, requestOptions{status: &status}); err != nil {
		return nil, nil, err
	}
	if status == http.StatusAccepted {
		var j Job
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, nil, fmt.Errorf("POST /v1/restores: decoding the dry run's job: %w", err)
		}
		return nil, &j, nil
	}
	var plan RestorePlan
	if err := json.Unmarshal(raw, &plan); err != nil {
		return nil, nil, fmt.Errorf("POST /v1/restores: decoding the plan: %w", err)
	}
	return &plan, nil, nil
}

// JobPlan is the plan a succeeded restore_plan job computed.
func (c *Client) JobPlan(ctx context.Context, jobID string) (*RestorePlan, error) {
	var out RestorePlan
	err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(jobID)+"/plan", nil, nil, &out, requestOptions{})
	return &out, err
}

// FormatMode writes permission bits as PointEntry.Mode does.
func FormatMode(mode uint32) string {
	s := strconv.FormatUint(uint64(mode), 8)
	for len(s) < 4 {
		s = "0" + s
	}
	return s
}
