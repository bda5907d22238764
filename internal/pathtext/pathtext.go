// Package pathtext writes file paths, which are bytes, as text that every
// byte survives: JSON, logs, terminals, Terraform strings. A path that is
// valid UTF-8 is written as it is; any other is Go-quoted
// ("/data/x_\xff.txt"). A quoted path cannot be mistaken for a plain
// absolute one, since those start with "/".
package pathtext

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Show writes an absolute path as text.
func Show(abs string) string {
	if utf8.ValidString(abs) {
		return abs
	}
	return strconv.Quote(abs)
}

// Parse reads a path as Show writes it: a plain path as is, a quoted one
// unquoted to its bytes.
func Parse(s string) (string, error) {
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	p, err := strconv.Unquote(s)
	if err != nil {
		return "", fmt.Errorf("%s is not a valid quoted path: %w", s, err)
	}
	return p, nil
}

// IsAbs reports whether s, as Parse reads it, is an absolute slash path.
func IsAbs(s string) bool {
	p, err := Parse(s)
	return err == nil && strings.HasPrefix(p, "/")
}
