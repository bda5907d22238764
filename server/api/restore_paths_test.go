package api

import "testing"

// TestRestorePathsTakeQuotedNames: a name that is not UTF-8 reaches the
// engine Go-quoted (JSON cannot carry its bytes); anything else must be a
// plain absolute path.
func TestRestorePathsTakeQuotedNames(t *testing.T) {
	for p, ok := range map[string]bool{
		"/srv/data":               true,
		`"/srv/x_\xff.txt"`:       true,
		`"srv/x_\xff.txt"`:        false, // quoted, but relative
		`"/srv/x_\xff.txt`:        false, // unterminated quote
		"srv/data":                false,
		`/srv/"quoted" in a name`: true,
	} {
		r := RestoreRequest{PointID: "p", Paths: []string{p}}
		if err := r.Validate(); (err == nil) != ok {
			t.Errorf("paths [%s]: error %v, want ok=%v", p, err, ok)
		} else if err != nil && err.Field != "paths[0]" {
			t.Errorf("paths [%s]: field %q, want paths[0]", p, err.Field)
		}
	}
}
