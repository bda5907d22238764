package api

import "github.com/bmatcuk/doublestar/v4"

// ValidGlob reports whether s is a glob the engine can match: a fileset's
// exclude_globs, a restore's include and exclude. The syntax is
// doublestar's: path.Match's plus "**" (any number of directories) and
// "{a,b}"; each pattern is matched against an entry's absolute path and
// its base name (see engine/files/glob.go).
func ValidGlob(s string) bool { return s != "" && doublestar.ValidatePattern(s) }
