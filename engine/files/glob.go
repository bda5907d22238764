package files

import (
	"path"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Globs, in fileset excludes and in a restore's include and exclude
// patterns, use the syntax of github.com/bmatcuk/doublestar: path.Match's
// "*", "?", "[...]" and "\", plus "**" as a whole path component (any
// number of directories, none included) and "{a,b}" alternatives. A
// pattern is matched against an entry's absolute slash-separated path
// ("/data/docs/a.txt") and against its base name ("a.txt"), so "*.tmp"
// and ".cache" match anywhere while "/data/**/*.pdf" is anchored.
//
// The difference from the path.Match globs fileset excludes used before:
// "**" used to match like "*" (never across a "/"), and "{" and "}" used to
// be literal characters; a pattern with either now means more, and one
// with an unclosed "{" is refused (write "\\{" for a literal brace). Every
// other pattern matches exactly what it matched before.

// ValidGlob reports whether pattern is a glob MatchAny can use.
func ValidGlob(pattern string) bool {
	return pattern != "" && doublestar.ValidatePattern(pattern)
}

// MatchAny reports whether any pattern matches the absolute slash path
// abs or its base name. Invalid patterns match nothing (callers validate
// them up front with ValidGlob).
func MatchAny(patterns []string, abs string) bool {
	base := path.Base(abs)
	for _, g := range patterns {
		if ok, _ := doublestar.Match(g, abs); ok {
			return true
		}
		if ok, _ := doublestar.Match(g, base); ok {
			return true
		}
	}
	return false
}

// MatchAnyAbove reports whether any pattern matches the manifest path p
// (see MatchAny) or one of the directories above it, as an exclude that
// names a directory covers everything below it.
func MatchAnyAbove(patterns []string, p string) bool {
	if len(patterns) == 0 || p == "." {
		return false
	}
	for {
		if MatchAny(patterns, "/"+p) {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}
