package server

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// pageParams reads ?limit= and ?page_token=. The token is an opaque keyset
// cursor: what the previous page's last row sorts by, which each listing
// decodes its own way (a name, an id, or a time cursor).
func pageParams(r *http.Request) (limit int, after string, err error) {
	limit = defaultPageSize
	if s := r.URL.Query().Get("limit"); s != "" {
		limit, err = strconv.Atoi(s)
		if err != nil || limit < 1 || limit > maxPageSize {
			return 0, "", api.FieldError("limit", "must be a whole number from 1 to %d, got %q", maxPageSize, s)
		}
	}
	if s := r.URL.Query().Get("page_token"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		// The cursor goes to the database as text: only what this server
		// could have issued passes.
		if err != nil || len(b) == 0 || badText(string(b)) != "" {
			return 0, "", badPageToken()
		}
		after = string(b)
	}
	return limit, after, nil
}

func badPageToken() *api.Error {
	return api.FieldError("page_token", "is not a token this server issued")
}

// pageOf turns a query of limit+1 rows into one page: the extra row only
// says there is a next page, whose token is the cursor of this page's last
// row.
func pageOf[R, T any](rows []R, limit int, cursor func(R) string, present func(R) (T, error)) (api.List[T], error) {
	out := api.List[T]{Items: make([]T, 0, min(len(rows), limit))}
	if len(rows) > limit {
		rows = rows[:limit]
		out.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(cursor(rows[limit-1])))
	}
	for _, row := range rows {
		item, err := present(row)
		if err != nil {
			return out, err
		}
		out.Items = append(out.Items, item)
	}
	return out, nil
}

// same presents a row as itself.
func same[T any](v T) (T, error) { return v, nil }

// timeCursor is the cursor of listings ordered by (time, id), newest first.
func timeCursor(t time.Time, id string) string { return t.Format(time.RFC3339Nano) + "|" + id }

// parseTimeCursor reads a timeCursor back; an empty one means the first page.
func parseTimeCursor(after string) (*time.Time, string, error) {
	if after == "" {
		return nil, "", nil
	}
	ts, id, ok := strings.Cut(after, "|")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil || !uuidPattern.MatchString(id) {
		return nil, "", badPageToken()
	}
	return &t, id, nil
}
