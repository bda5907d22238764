package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// Every string a request carries ends up as PostgreSQL text somewhere (an
// id, a name, a filter, a cursor, a path), and text holds only valid UTF-8
// without NUL: anything else fails deep in the database as SQLSTATE 22021.
// So the request boundary refuses such strings once, for every route,
// before any handler sees them: path parameters and query parameters in
// textChecked, JSON strings and keys in decodeJSON.

// badText says why s cannot be stored as text, or "" when it can.
func badText(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "contains a NUL character"
	}
	return ""
}

var patternWildcard = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// textChecked wraps a route's handler so that its path parameters (named
// by the mux pattern), every query parameter and the Idempotency-Key
// header are valid text. A query
// that does not parse is refused too, rather than silently losing the
// pairs url.Query drops.
func textChecked(pattern string, next http.HandlerFunc) http.HandlerFunc {
	var params []string
	for _, m := range patternWildcard.FindAllStringSubmatch(pattern, -1) {
		params = append(params, m[1])
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkRequestText(r, params); err != nil {
			writeError(w, r, err)
			return
		}
		next(w, r)
	}
}

func checkRequestText(r *http.Request, params []string) *api.Error {
	for _, name := range params {
		if why := badText(r.PathValue(name)); why != "" {
			return api.FieldError(name, "%s", why)
		}
	}
	// Of the headers the API reads, only the idempotency key is stored as
	// given (If-Match is a number, X-Request-Id has its own pattern).
	if why := badText(r.Header.Get("Idempotency-Key")); why != "" {
		return api.FieldError("Idempotency-Key", "%s", why)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return api.FieldError("query", "is not a valid URL query: %v", err)
	}
	for key, values := range q {
		if why := badText(key); why != "" {
			return api.FieldError("query", "holds a parameter name that %s", why)
		}
		for _, v := range values {
			if why := badText(v); why != "" {
				return api.FieldError(key, "%s", why)
			}
		}
	}
	return nil
}

// checkJSONText finds the first string (key or value) of a JSON body that
// is not valid text and names it by its path ("full.at", "ids[3]").
// encoding/json would otherwise turn invalid UTF-8 into U+FFFD without a
// word (a backup path silently naming another file) and pass NUL through
// to the database. A body that is not JSON is left to the decoder, which
// reports it better.
func checkJSONText(raw []byte) *api.Error {
	invalidAt := len(raw)
	if !utf8.Valid(raw) {
		invalidAt = firstInvalidUTF8(raw)
	} else if !bytes.Contains(raw, []byte(`\u0000`)) {
		return nil // the common case: nothing to look for
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var stack []jsonFrame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		var top *jsonFrame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		s, isString := tok.(string)
		isKey := isString && top != nil && top.object && top.wantKey
		if isKey {
			top.key, top.wantKey = s, false
		}
		if isString {
			why := badText(s)
			if dec.InputOffset() > int64(invalidAt) {
				why = "is not valid UTF-8"
			}
			if why != "" {
				return api.FieldError(jsonFieldPath(stack), "%s", why)
			}
		}
		if isKey {
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, jsonFrame{object: true, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, jsonFrame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return nil
			}
			top = &stack[len(stack)-1]
		}
		if top != nil { // a value ended: move to the next key or element
			top.wantKey = top.object
			top.index++
		}
	}
}

// jsonFrame is one open object or array while walking a body's tokens.
type jsonFrame struct {
	object  bool
	wantKey bool
	key     string
	index   int
}

// jsonFieldPath names the current position the way field errors do.
func jsonFieldPath(stack []jsonFrame) string {
	var b strings.Builder
	for _, f := range stack {
		if f.object {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			// The name itself may be what is wrong: show it escaped.
			b.WriteString(strings.ReplaceAll(strings.ToValidUTF8(f.key, "\uFFFD"), "\x00", `\u0000`))
		} else {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		}
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}
