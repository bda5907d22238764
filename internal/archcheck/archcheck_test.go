package archcheck

import (
	"reflect"
	"strings"
	"testing"
)

// TestRoomBoundaries is the check `make test` runs: no package of this
// module imports across a room boundary, other than the KnownViolations
// being removed, and every KnownViolations entry still violates.
func TestRoomBoundaries(t *testing.T) {
	mod, pkgs, err := Load(".")
	if err != nil {
		t.Fatal(err)
	}
	// A rule that matches no package checks nothing: its patterns went
	// stale when a room moved, or Load listed nothing.
	for _, r := range Rules {
		if len(Roots(mod, pkgs, r)) == 0 {
			t.Errorf("rule %q applies to no package of %s", r.Name, mod)
		}
	}
	unexpected, stale := Compare(Evaluate(mod, pkgs, Rules), KnownViolations)
	for _, v := range unexpected {
		t.Errorf("forbidden import: %s", v)
	}
	for _, k := range stale {
		t.Errorf("KnownViolations lists %s importing %s (%q), which it no longer does: delete the entry from internal/archcheck/archcheck.go", k.Importer, k.Imported, k.Rule)
	}
}

const mod = "example.com/m"

// plain is a package as `go list` lists its build without tests.
func plain(path string, imports ...string) Package {
	return Package{ImportPath: full(path), Name: lastElem(path), Imports: fullAll(imports)}
}

// inTest is path compiled with its own _test.go files, for its tests.
func inTest(path string, imports ...string) Package {
	return Package{ImportPath: full(path) + " [" + full(path) + ".test]", Name: lastElem(path), ForTest: full(path), Imports: fullAll(imports)}
}

// xTest is path's external test package (package x_test).
func xTest(path string, imports ...string) Package {
	return Package{ImportPath: full(path) + "_test [" + full(path) + ".test]", Name: lastElem(path) + "_test", ForTest: full(path), Imports: fullAll(imports)}
}

// recompiled is dep built again for the tests of forTest.
func recompiled(dep, forTest string, imports ...string) Package {
	return Package{ImportPath: full(dep) + " [" + full(forTest) + ".test]", Name: lastElem(dep), ForTest: full(forTest), Imports: fullAll(imports)}
}

func testMain(path string) Package {
	return Package{ImportPath: full(path) + ".test", Name: "main", Imports: fullAll([]string{path + " [" + path + ".test]"})}
}

// full turns "a/b" into "example.com/m/a/b" and "a [b.test]" into the
// same with both paths qualified; "std:fmt" stays "fmt".
func full(p string) string {
	if s, ok := strings.CutPrefix(p, "std:"); ok {
		return s
	}
	if base, variant, ok := strings.Cut(p, " ["); ok {
		return mod + "/" + base + " [" + mod + "/" + variant
	}
	return mod + "/" + p
}

func fullAll(ps []string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, full(p))
	}
	return out
}

func lastElem(p string) string { return p[strings.LastIndex(p, "/")+1:] }

// modulePackages is a small module shaped like Haven that keeps every
// rule.
func modulePackages() []Package {
	return []Package{
		plain("internal/pathtext", "std:strings"),
		plain("server/api", "internal/pathtext", "std:net/http"),
		plain("server/api/wire"),
		plain("server/db"),
		plain("server/pgembed"),
		plain("server/servertest", "server", "server/pgembed"),
		plain("engine/repo/index"),
		plain("engine/repo", "engine/repo/index"),
		plain("server", "server/api", "server/db", "engine/repo"),
		plain("provider", "server/api"),
		inTest("provider", "server/api", "server/servertest"),
		xTest("provider", "provider", "server/servertest"),
		testMain("provider"),
		plain("agent", "server/api", "server/api/wire", "engine/repo"),
		xTest("agent", "agent", "server/servertest"),
		plain("internal/testparts"),
		plain("engine/files", "engine/repo"),
		inTest("engine/files", "engine/repo", "internal/testparts"),
		recompiled("engine/repo", "engine/files", "engine/repo/index"),
		testMain("engine/files"),
	}
}

func TestEvaluateCleanModule(t *testing.T) {
	if vs := Evaluate(mod, modulePackages(), Rules); len(vs) != 0 {
		t.Errorf("violations in a module that keeps the rules: %v", vs)
	}
}

func TestEvaluateReportsViolations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		add   []Package
		want  Violation // Why left out
		chain string
	}{
		{
			name:  "provider imports the server's SQL",
			add:   []Package{plain("provider", "server/api", "server/db")},
			want:  Violation{Rule: "provider knows only server/api", Importer: "provider", Imported: "server/db"},
			chain: "provider → server/db",
		},
		{
			name:  "provider reaches the engine through server/api",
			add:   []Package{plain("server/api", "internal/pathtext", "engine/repo")},
			want:  Violation{Rule: "provider knows only server/api", Importer: "provider", Imported: "engine/repo"},
			chain: "provider → server/api → engine/repo",
		},
		{
			name:  "engine test helper reaches the server",
			add:   []Package{plain("internal/testparts", "server/pgembed")},
			want:  Violation{Rule: "engine never imports server, provider, agent or cli", Importer: "engine/files", Imported: "server/pgembed"},
			chain: "engine/files (tests) → internal/testparts → server/pgembed",
		},
		{
			name:  "engine external test imports the agent",
			add:   []Package{xTest("engine/files", "engine/files", "agent")},
			want:  Violation{Rule: "engine never imports server, provider, agent or cli", Importer: "engine/files", Imported: "agent"},
			chain: "engine/files (tests) → agent",
		},
		{
			name:  "server imports the index",
			add:   []Package{plain("server/jobs", "engine/repo", "engine/repo/index"), plain("server", "server/jobs")},
			want:  Violation{Rule: "engine/repo/index is the engine's own", Importer: "server/jobs", Imported: "engine/repo/index"},
			chain: "server/jobs → engine/repo/index",
		},
		{
			name:  "a test outside the engine imports the index",
			add:   []Package{inTest("server", "server/api", "engine/repo/index")},
			want:  Violation{Rule: "engine/repo/index is the engine's own", Importer: "server", Imported: "engine/repo/index"},
			chain: "server (tests) → engine/repo/index",
		},
		{
			name:  "agent imports the server's SQL",
			add:   []Package{plain("agent", "server/api", "server/db")},
			want:  Violation{Rule: "agent knows only server/api of the server", Importer: "agent", Imported: "server/db"},
			chain: "agent → server/db",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Later entries replace earlier ones of the same import path.
			byID := map[string]int{}
			var pkgs []Package
			for _, p := range append(modulePackages(), tc.add...) {
				if i, ok := byID[p.ImportPath]; ok {
					pkgs[i] = p
					continue
				}
				byID[p.ImportPath] = len(pkgs)
				pkgs = append(pkgs, p)
			}
			vs := Evaluate(mod, pkgs, Rules)
			if len(vs) != 1 {
				t.Fatalf("want one violation, got %d: %v", len(vs), vs)
			}
			got := vs[0]
			if got.Why == "" || !strings.Contains(got.String(), tc.chain) {
				t.Errorf("message %q lacks the reason or the chain %q", got.String(), tc.chain)
			}
			got.Why, got.Chain = "", nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCompareKnownViolations(t *testing.T) {
	listed := Violation{Rule: "r", Importer: "server/jobs", Imported: "engine/repo/index"}
	fresh := Violation{Rule: "r", Importer: "server", Imported: "engine/repo/index"}
	known := []KnownViolation{
		{"r", "server/jobs", "engine/repo/index"},
		{"r", "internal/cmd/haven-bench", "engine/repo/index"}, // fixed since
	}
	unexpected, stale := Compare([]Violation{listed, fresh}, known)
	if !reflect.DeepEqual(unexpected, []Violation{fresh}) {
		t.Errorf("unexpected = %v, want only the unlisted violation", unexpected)
	}
	if !reflect.DeepEqual(stale, known[1:]) {
		t.Errorf("stale = %v, want the entry that no longer violates", stale)
	}
}

func TestMatchAny(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"server/api/...", "server/api", true},
		{"server/api/...", "server/api/wire", true},
		{"server/api/...", "server/apix", false},
		{"server/api", "server/api/wire", false},
		{"...", "cli", true},
		{"engine/...", "engine", true},
	} {
		if got := matchAny([]string{tc.pattern}, tc.path); got != tc.want {
			t.Errorf("matchAny(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}
