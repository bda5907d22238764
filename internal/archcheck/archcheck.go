// Package archcheck keeps Haven's rooms apart: the provider, the server,
// the engine, the agent and the CLI may import each other only as
// DESIGN.md ("Keep the room boundaries clear") and the architecture guide
// (docs/guides/architecture.md) say. Rules names those imports; Evaluate
// finds where the output of `go list -deps -test -json ./...` breaks a
// rule, and the test beside this file runs it over the module, so `make
// test` fails as soon as a forbidden import appears.
//
// An import graph is checked rather than source text because a forbidden
// import usually arrives indirectly, through a helper package that looked
// harmless (the engine reached the server's embedded PostgreSQL through
// its test helpers that way).
package archcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Reach says how far from a package a rule looks.
type Reach int

const (
	// Direct: only the package's own import lines.
	Direct Reach = iota
	// Transitive: everything the package imports, through any number of
	// packages of this module.
	Transitive
)

// Scope says which code of a package a rule covers.
type Scope int

const (
	// Build: the code `go build` compiles, leaving test files out. For rooms
	// whose end-to-end tests rightly start a whole server (provider, agent).
	Build Scope = iota
	// WithTests: also the package's _test.go files and what only they
	// import.
	WithTests
)

// A Rule forbids some imports to some packages. Patterns are import paths
// relative to the module ("server/api"); a trailing "/..." also matches
// every package below ("server/api/..." matches server/api and
// server/api/wire), and "..." alone matches every package of the module.
type Rule struct {
	Name string
	// Why is printed with every violation, so the message says what to do.
	Why string
	// From: the packages the rule applies to, minus Except.
	From, Except []string
	// Forbid: packages of this module that From may not import, minus
	// ForbidExcept.
	Forbid, ForbidExcept []string
	// AllowOnly, when set: the only packages of this module that From may
	// import; every other one is forbidden.
	AllowOnly []string
	Reach     Reach
	Scope     Scope
}

// Rules are Haven's room boundaries.
var Rules = []Rule{
	{
		Name: "provider knows only server/api",
		Why:  "the provider talks to the server through the API contract and its typed client, nothing else; move what it needs into server/api",
		From: []string{"provider/..."},
		AllowOnly: []string{
			"provider/...",
			"server/api/...",
			// Imported by server/api (paths in API messages); a leaf.
			"internal/pathtext",
		},
		Reach: Transitive,
		// The acceptance tests start a real server (server/servertest).
		Scope: Build,
	},
	{
		Name:   "engine never imports server, provider, agent or cli",
		Why:    "the engine is the data plane and knows nothing of who drives it, not even through test helpers; move shared helpers under internal/",
		From:   []string{"engine/..."},
		Forbid: []string{"server/...", "provider/...", "agent/...", "cli/..."},
		Reach:  Transitive,
		Scope:  WithTests,
	},
	{
		Name:   "engine/repo/index is the engine's own",
		Why:    "the index is an engine internal; use what engine/repo exposes (has, sessions, roots, migrate)",
		From:   []string{"..."},
		Except: []string{"engine/..."},
		Forbid: []string{"engine/repo/index/..."},
		// engine/repo imports the index, and everything imports engine/repo.
		Reach: Direct,
		Scope: WithTests,
	},
	{
		Name:         "agent knows only server/api of the server",
		Why:          "the agent reaches the server through the API contract and the wire codec in server/api/...",
		From:         []string{"agent/..."},
		Forbid:       []string{"server/..."},
		ForbidExcept: []string{"server/api/..."},
		Reach:        Transitive,
		// The agent's end-to-end tests start a real server.
		Scope: Build,
	},
}

// A KnownViolation is a violation being removed by work in progress. It
// is listed so the check stays green meanwhile; the check fails when an
// entry no longer violates, so the list cannot outlive the work.
type KnownViolation struct {
	Rule, Importer, Imported string
}

// KnownViolations are imports that break a rule while they are being
// removed, each with a comment saying why it is there; the check fails on
// any other violation, and on an entry that no longer violates. Empty is
// the normal state.
var KnownViolations = []KnownViolation{}

// Package is the part of `go list -json` output that Evaluate reads.
type Package struct {
	// ImportPath of a test build is "x [y.test]": package x compiled for
	// the tests of y.
	ImportPath string
	Name       string
	// ForTest is y for "x [y.test]".
	ForTest string
	// Imports as go list resolves them, test variants included.
	Imports []string
}

// A Violation is one forbidden import: Importer (a package the rule
// applies to) imports Imported, through Chain.
type Violation struct {
	Rule     string
	Why      string
	Importer string
	Imported string
	// Chain runs from Importer to Imported, both included, as module-
	// relative paths; test code is marked.
	Chain []string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s imports %s, breaking %q\n\timport chain: %s\n\t%s",
		v.Importer, v.Imported, v.Rule, strings.Join(v.Chain, " → "), v.Why)
}

// matches tells whether k names v.
func (k KnownViolation) matches(v Violation) bool {
	return k.Rule == v.Rule && k.Importer == v.Importer && k.Imported == v.Imported
}

// Load runs `go list -deps -test -json ./...` in the module around dir and
// returns the module's path and every package listed.
func Load(dir string) (modulePath string, pkgs []Package, err error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		// `go test` may run with a PATH that lacks go; the toolchain that
		// built this test has one.
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	run := func(dir string, args ...string) ([]byte, error) {
		cmd := exec.Command(goBin, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out, nil
	}
	gomod, err := run(dir, "env", "GOMOD")
	if err != nil {
		return "", nil, err
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || strings.TrimSpace(string(gomod)) == "/dev/null" {
		return "", nil, fmt.Errorf("%s is not inside a Go module", dir)
	}
	mod, err := run(root, "list", "-m")
	if err != nil {
		return "", nil, err
	}
	out, err := run(root, "list", "-deps", "-test", "-json", "./...")
	if err != nil {
		return "", nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Package
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", nil, fmt.Errorf("reading go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return strings.TrimSpace(string(mod)), pkgs, nil
}

// Evaluate returns every violation of rules in pkgs, the output of `go
// list -deps -test -json` over module modulePath. Each importer and
// forbidden package is reported once, with the shortest chain; a
// forbidden package is not looked through, so a violation names where the
// chain enters forbidden ground.
func Evaluate(modulePath string, pkgs []Package, rules []Rule) []Violation {
	g := newGraph(modulePath, pkgs)
	var found []Violation
	for _, r := range rules {
		seen := map[[2]string]bool{}
		for _, id := range g.ids {
			n := g.nodes[id]
			if !n.isRoot(r.Scope) || !r.appliesTo(n.path) {
				continue
			}
			for _, v := range g.search(r, id) {
				key := [2]string{v.Importer, v.Imported}
				if seen[key] {
					continue
				}
				seen[key] = true
				found = append(found, v)
			}
		}
	}
	return found
}

// Compare splits violations into those no entry of known names and the
// entries of known that name no violation.
func Compare(violations []Violation, known []KnownViolation) (unexpected []Violation, stale []KnownViolation) {
	for _, v := range violations {
		listed := false
		for _, k := range known {
			if k.matches(v) {
				listed = true
				break
			}
		}
		if !listed {
			unexpected = append(unexpected, v)
		}
	}
	for _, k := range known {
		still := false
		for _, v := range violations {
			if k.matches(v) {
				still = true
				break
			}
		}
		if !still {
			stale = append(stale, k)
		}
	}
	return unexpected, stale
}

// Roots returns the packages rule r applies to, so a rule whose patterns
// match nothing (after a package moved) can be caught.
func Roots(modulePath string, pkgs []Package, r Rule) []string {
	g := newGraph(modulePath, pkgs)
	var roots []string
	for _, id := range g.ids {
		n := g.nodes[id]
		if n.isRoot(Build) && r.appliesTo(n.path) {
			roots = append(roots, n.path)
		}
	}
	return roots
}

// node is one package of the module as go list listed it.
type node struct {
	id string
	// path is the module-relative path of the package whose code this is:
	// "engine/files" for "…/engine/files [….test]" and for the external
	// test package "…/engine/files_test [….test]".
	path string
	// test: compiled with test files of its own (an in-package test build
	// or an external test package).
	test bool
	// recompiled: a dependency built again for another package's tests; its
	// own code is the same as the plain build.
	recompiled bool
	testMain   bool
	imports    []string
}

func (n *node) isRoot(s Scope) bool {
	if n.testMain || n.recompiled {
		return false
	}
	return s == WithTests || !n.test
}

// label names a node in an import chain.
func (n *node) label() string {
	if n.test {
		return n.path + " (tests)"
	}
	return n.path
}

type graph struct {
	nodes map[string]*node
	ids   []string // sorted, so reports come in a stable order
}

func newGraph(modulePath string, pkgs []Package) *graph {
	g := &graph{nodes: map[string]*node{}}
	rel := func(importPath string) (string, bool) {
		if importPath == modulePath {
			return ".", true
		}
		r, ok := strings.CutPrefix(importPath, modulePath+"/")
		return r, ok
	}
	for _, p := range pkgs {
		base, _, variant := strings.Cut(p.ImportPath, " [")
		path, ok := rel(base)
		if !ok {
			continue // the standard library and other modules
		}
		n := &node{id: p.ImportPath, imports: p.Imports}
		switch {
		case !variant && strings.HasSuffix(base, ".test") && p.Name == "main":
			n.testMain = true
		case variant && base == p.ForTest:
			n.test = true
		case variant && base == p.ForTest+"_test":
			n.test = true
			path = strings.TrimSuffix(path, "_test")
		case variant:
			n.recompiled = true
		}
		n.path = path
		g.nodes[p.ImportPath] = n
		g.ids = append(g.ids, p.ImportPath)
	}
	sort.Strings(g.ids)
	return g
}

func (r Rule) appliesTo(path string) bool {
	return matchAny(r.From, path) && !matchAny(r.Except, path)
}

// forbids tells whether r forbids importing the package at path.
func (r Rule) forbids(path string) bool {
	if len(r.AllowOnly) > 0 && !matchAny(r.AllowOnly, path) {
		return true
	}
	return matchAny(r.Forbid, path) && !matchAny(r.ForbidExcept, path)
}

// search walks breadth-first from root and returns the forbidden packages
// it reaches, each with the shortest chain to it.
func (g *graph) search(r Rule, root string) []Violation {
	from := map[string]string{root: ""}
	queue := []string{root}
	var found []Violation
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		n := g.nodes[id]
		if id != root && r.forbids(n.path) {
			found = append(found, Violation{
				Rule: r.Name, Why: r.Why,
				Importer: g.nodes[root].path, Imported: n.path,
				Chain: g.chain(from, id),
			})
			continue // report where the chain enters forbidden ground
		}
		if id != root && r.Reach == Direct {
			continue
		}
		for _, imp := range n.imports {
			if _, ok := g.nodes[imp]; !ok {
				continue // outside the module
			}
			if _, ok := from[imp]; ok {
				continue
			}
			from[imp] = id
			queue = append(queue, imp)
		}
	}
	return found
}

func (g *graph) chain(from map[string]string, id string) []string {
	var chain []string
	for ; id != ""; id = from[id] {
		chain = append([]string{g.nodes[id].label()}, chain...)
	}
	return chain
}

func matchAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if p == "..." || p == path {
			return true
		}
		if prefix, ok := strings.CutSuffix(p, "/..."); ok && (path == prefix || strings.HasPrefix(path, prefix+"/")) {
			return true
		}
	}
	return false
}
