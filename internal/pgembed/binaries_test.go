//go:build linux || darwin

package pgembed

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeInstall creates a stand-in installation whose postgres only answers
// --version.
func fakeInstall(t *testing.T, dir, version string, withInitdb bool) {
	t.Helper()
	writeScript(t, filepath.Join(dir, "postgres"), "echo 'postgres (PostgreSQL) "+version+"'")
	if withInitdb {
		writeScript(t, filepath.Join(dir, "initdb"), "exit 0")
	}
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func versions(bs []Binaries) string {
	var vs []string
	for _, b := range bs {
		vs = append(vs, b.Version)
	}
	return strings.Join(vs, ",")
}

func TestFindBinariesPicksHighestMajor(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	pathDir := filepath.Join(root, "bin")
	fakeInstall(t, pathDir, "13.4", true) // too old: ignored
	pgConfigDir := filepath.Join(root, "opt", "pg17", "bin")
	fakeInstall(t, pgConfigDir, "17.2", true)
	writeScript(t, filepath.Join(pathDir, "pg_config"), "echo "+pgConfigDir)
	lib := filepath.Join(root, "lib", "postgresql")
	fakeInstall(t, filepath.Join(lib, "14", "bin"), "14.11", true)
	fakeInstall(t, filepath.Join(lib, "16", "bin"), "16.2 (Debian 16.2-1.pgdg120+2)", true)
	fakeInstall(t, filepath.Join(lib, "18", "bin"), "18.0", false) // client-only: no initdb
	// The same installation reached through a symlink on PATH counts once.
	linkDir := filepath.Join(root, "links")
	if err := os.MkdirAll(linkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"postgres", "initdb"} {
		if err := os.Symlink(filepath.Join(lib, "16", "bin", name), filepath.Join(linkDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	spec := searchSpec{
		path:  strings.Join([]string{linkDir, pathDir}, string(os.PathListSeparator)),
		globs: []string{filepath.Join(lib, "*", "bin")},
	}

	all, err := findAll(spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(all); got != "17.2,16.2,14.11" {
		t.Errorf("found %s, want 17.2,16.2,14.11", got)
	}
	if all[0].Dir != pgConfigDir || all[0].Major != 17 {
		t.Errorf("best = %+v, want 17 in %s", all[0], pgConfigDir)
	}
	if all[1].Dir != filepath.Join(lib, "16", "bin") {
		t.Errorf("symlinked install not resolved: %+v", all[1])
	}

	// Without pg_config the globbed 16 wins.
	if err := os.Remove(filepath.Join(pathDir, "pg_config")); err != nil {
		t.Fatal(err)
	}
	if all, err = findAll(spec); err != nil || all[0].Major != 16 {
		t.Errorf("without pg_config: %s, %v; want 16 first", versions(all), err)
	}

	// HAVEN_PG_BINDIR is the only place looked at when set.
	spec.override = filepath.Join(lib, "14", "bin")
	if all, err = findAll(spec); err != nil || versions(all) != "14.11" {
		t.Errorf("override: %s, %v; want only 14.11", versions(all), err)
	}
	spec.override = filepath.Join(lib, "18", "bin")
	if _, err = findAll(spec); !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "HAVEN_PG_BINDIR") {
		t.Errorf("override without initdb: %v", err)
	}
}

func TestNoBinariesError(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	spec := searchSpec{path: root, globs: []string{filepath.Join(root, "lib", "postgresql", "*", "bin")}}

	_, err := findAll(spec)
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("want ErrNoBinaries, got %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("message is not one line: %q", msg)
	}
	for _, want := range []string{"no PostgreSQL server binaries found", "PATH", "pg_config --bindir", "apt-get install postgresql", "HAVEN_DATABASE_URL"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}

	// Start reports the same error before touching the directory.
	dir := filepath.Join(root, "cluster")
	_, err = start(context.Background(), Options{Dir: dir}, knobs{search: &spec})
	if !errors.Is(err, ErrNoBinaries) {
		t.Errorf("Start: %v", err)
	}
	if _, statErr := os.Stat(dir); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("Start created %s without binaries", dir)
	}

	// Only an old version present is still "no binaries", naming what was found.
	fakeInstall(t, filepath.Join(root, "lib", "postgresql", "12", "bin"), "12.3", true)
	_, err = findAll(spec)
	if !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "12.3") || strings.Contains(err.Error(), "\n") {
		t.Errorf("too old: %v", err)
	}
}

// TestFindBinariesOnThisMachine needs real PostgreSQL server binaries, as
// every cluster test here does; their absence is a failure, not a skip.
func TestFindBinariesOnThisMachine(t *testing.T) {
	t.Parallel()
	b, err := FindBinaries()
	if err != nil {
		t.Fatalf("%v", err)
	}
	if b.Major < MinMajor || !isExecutable(filepath.Join(b.Dir, "postgres")) || !isExecutable(filepath.Join(b.Dir, "initdb")) {
		t.Errorf("FindBinaries = %+v", b)
	}
	t.Logf("found PostgreSQL %s in %s", b.Version, b.Dir)
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		out          string
		major, minor int
		version      string
	}{
		{"postgres (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)\n", 15, 8, "15.8"},
		{"postgres (PostgreSQL) 14.13\n", 14, 13, "14.13"},
		{"postgres (PostgreSQL) 18devel\n", 18, 0, "18devel"},
		{"postgres (PostgreSQL) 17beta1\n", 17, 0, "17beta1"},
	} {
		major, minor, version, err := parseVersion(tc.out)
		if err != nil || major != tc.major || minor != tc.minor || version != tc.version {
			t.Errorf("parseVersion(%q) = %d, %d, %q, %v", tc.out, major, minor, version, err)
		}
	}
	if _, _, _, err := parseVersion("sh: postgres: not found"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestPickBinariesMatchesExistingCluster(t *testing.T) {
	t.Parallel()
	cands := []Binaries{{Dir: "/pg16", Major: 16, Version: "16.2"}, {Dir: "/pg15", Major: 15, Version: "15.8"}}
	data := t.TempDir()
	if b, err := pickBinaries(cands, data); err != nil || b.Major != 16 {
		t.Errorf("new cluster: %+v, %v; want newest", b, err)
	}
	if err := os.WriteFile(filepath.Join(data, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := pickBinaries(cands, data); err != nil || b.Major != 15 {
		t.Errorf("15 cluster: %+v, %v; want 15", b, err)
	}
	if err := os.WriteFile(filepath.Join(data, "PG_VERSION"), []byte("14\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pickBinaries(cands, data); !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "pg_upgrade") {
		t.Errorf("14 cluster with 15/16 binaries: %v", err)
	}
}
