package pgembed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MinMajor is the oldest PostgreSQL major version the server's schema and job
// queue are written for.
const MinMajor = 14

// ErrNoBinaries is wrapped by every error that means no usable PostgreSQL
// server binaries exist, so that callers can tell "install something" apart
// from a cluster that failed to start.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries found")

// Binaries is one installation of the PostgreSQL server programs.
type Binaries struct {
	Dir     string // directory holding postgres and initdb
	Major   int    // e.g. 15
	Version string // as printed by postgres --version, e.g. "15.8"

	minor int
}

// searchSpec lists where to look. It is a value rather than globals so tests
// can point the search at fake installations without touching the machine.
type searchSpec struct {
	override string   // HAVEN_PG_BINDIR; when set nothing else is searched
	path     string   // the PATH value to search
	globs    []string // well-known install roots
}

// defaultGlobs covers the Debian/Ubuntu and PGDG RPM layouts, where the server
// programs live outside PATH.
var defaultGlobs = []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"}

func defaultSearch() searchSpec {
	return searchSpec{
		override: os.Getenv("HAVEN_PG_BINDIR"),
		path:     os.Getenv("PATH"),
		globs:    defaultGlobs,
	}
}

// FindBinaries returns the newest PostgreSQL server installation on this
// machine. HAVEN_PG_BINDIR, when set, names the only directory considered.
func FindBinaries() (Binaries, error) {
	all, err := findAll(defaultSearch())
	if err != nil {
		return Binaries{}, err
	}
	return all[0], nil
}

// findAll returns every usable installation, newest first. Start needs more
// than the newest one: an existing cluster can only be run by the major
// version that created it.
func findAll(s searchSpec) ([]Binaries, error) {
	if s.override != "" {
		b, err := probe(s.override)
		if err != nil {
			return nil, fmt.Errorf("%w in HAVEN_PG_BINDIR=%s: %v", ErrNoBinaries, s.override, err)
		}
		if b.Major < MinMajor {
			return nil, tooOld([]Binaries{b})
		}
		return []Binaries{b}, nil
	}

	var dirs []string
	for _, d := range filepath.SplitList(s.path) {
		if d == "" {
			continue
		}
		if isExecutable(filepath.Join(d, "postgres")) {
			dirs = append(dirs, d)
		}
	}
	if pgConfig := lookPath("pg_config", s.path); pgConfig != "" {
		if d := pgConfigBindir(pgConfig); d != "" {
			dirs = append(dirs, d)
		}
	}
	for _, g := range s.globs {
		matches, _ := filepath.Glob(g)
		dirs = append(dirs, matches...)
	}

	var found []Binaries
	seen := map[string]bool{}
	for _, d := range dirs {
		d = realBinDir(d)
		if seen[d] {
			continue
		}
		seen[d] = true
		if b, err := probe(d); err == nil {
			found = append(found, b)
		}
	}

	var usable []Binaries
	for _, b := range found {
		if b.Major >= MinMajor {
			usable = append(usable, b)
		}
	}
	if len(usable) == 0 {
		if len(found) > 0 {
			return nil, tooOld(found)
		}
		where := append([]string{"PATH", "pg_config --bindir"}, s.globs...)
		return nil, fmt.Errorf("%w (looked on %s): install PostgreSQL >= %d server binaries (Debian: apt-get install postgresql) or set HAVEN_PG_BINDIR to their directory or HAVEN_DATABASE_URL to an existing database",
			ErrNoBinaries, strings.Join(where, ", "), MinMajor)
	}
	// Stable so that, between equal versions, the PATH entry wins.
	sort.SliceStable(usable, func(i, j int) bool {
		if usable[i].Major != usable[j].Major {
			return usable[i].Major > usable[j].Major
		}
		return usable[i].minor > usable[j].minor
	})
	return usable, nil
}

func tooOld(found []Binaries) error {
	var vs []string
	for _, b := range found {
		vs = append(vs, fmt.Sprintf("%s in %s", b.Version, b.Dir))
	}
	return fmt.Errorf("%w newer than version %d (found %s): install PostgreSQL >= %d server binaries or set HAVEN_DATABASE_URL to an existing database",
		ErrNoBinaries, MinMajor-1, strings.Join(vs, ", "), MinMajor)
}

// realBinDir resolves symlinked programs (e.g. /usr/local/bin/postgres ->
// /usr/lib/postgresql/15/bin/postgres) so that the same installation found
// twice counts once, and so initdb is taken from beside the real postgres.
func realBinDir(dir string) string {
	p, err := filepath.EvalSymlinks(filepath.Join(dir, "postgres"))
	if err != nil {
		return filepath.Clean(dir)
	}
	resolved := filepath.Dir(p)
	if isExecutable(filepath.Join(resolved, "initdb")) || !isExecutable(filepath.Join(dir, "initdb")) {
		return resolved
	}
	return filepath.Clean(dir)
}

// probe checks that dir holds both programs and asks postgres its version.
func probe(dir string) (Binaries, error) {
	for _, name := range []string{"postgres", "initdb"} {
		if !isExecutable(filepath.Join(dir, name)) {
			return Binaries{}, fmt.Errorf("no executable %s", name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("postgres --version: %v", err)
	}
	major, minor, version, err := parseVersion(string(out))
	if err != nil {
		return Binaries{}, err
	}
	return Binaries{Dir: dir, Major: major, Version: version, minor: minor}, nil
}

// versionRE also accepts development builds ("17devel", "17beta1"), which have
// no minor number.
var versionRE = regexp.MustCompile(`\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?\S*`)

func parseVersion(out string) (major, minor int, version string, err error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, "", fmt.Errorf("unrecognised postgres --version output %q", strings.TrimSpace(out))
	}
	major, _ = strconv.Atoi(m[1])
	if m[2] != "" {
		minor, _ = strconv.Atoi(m[2])
	}
	return major, minor, strings.TrimSpace(strings.TrimPrefix(m[0], "(PostgreSQL)")), nil
}

func pgConfigBindir(pgConfig string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// lookPath searches an explicit PATH value; exec.LookPath only reads the
// process environment, which tests must not have to modify.
func lookPath(name, path string) string {
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			continue
		}
		if p := filepath.Join(d, name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// FindBinariesFor returns an installation of one major version: the
// programs that read a cluster's files (pg_waldump, pg_ctl) must be of its
// version.
func FindBinariesFor(major int) (Binaries, error) {
	all, err := findAll(defaultSearch())
	if err != nil {
		return Binaries{}, err
	}
	for _, b := range all {
		if b.Major == major {
			return b, nil
		}
	}
	return Binaries{}, fmt.Errorf("no PostgreSQL %d programs found on this host (found %s): install that version's server package", major, all[0].Version)
}
