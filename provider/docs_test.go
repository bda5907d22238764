package provider

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/objectvalidator"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
)

// requiredBlocks lists the blocks of a resource schema that a validator
// makes required: the framework has no Required flag for blocks, so
// tfplugindocs would list them under "Optional".
func requiredBlocks(ctx context.Context, s schema.Schema) []string {
	isRequired := map[string]bool{
		objectvalidator.IsRequired().Description(ctx): true,
		listvalidator.IsRequired().Description(ctx):   true,
	}
	var out []string
	for name, b := range s.Blocks {
		var descs []string
		switch b := b.(type) {
		case schema.SingleNestedBlock:
			for _, v := range b.Validators {
				descs = append(descs, v.Description(ctx))
			}
		case schema.ListNestedBlock:
			for _, v := range b.Validators {
				descs = append(descs, v.Description(ctx))
			}
		}
		for _, d := range descs {
			if isRequired[d] {
				out = append(out, name)
			}
		}
	}
	return out
}

// schemaSection returns the lines of one "### <title>" section of a
// generated page's top-level schema.
func schemaSection(page, title string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(page, "\n") {
		switch {
		case strings.HasPrefix(line, "### "):
			in = line == "### "+title
		case in && strings.HasPrefix(line, "- `"):
			out = append(out, line)
		}
	}
	return out
}

// TestDocsListRequiredBlocksAsRequired holds docs/ to the schemas: every
// block a resource requires is listed under "### Required", and none
// under "### Optional" (templates/resources/backup_policy.md.tmpl moves
// them; a new resource with a required block needs the same template).
func TestDocsListRequiredBlocksAsRequired(t *testing.T) {
	ctx := context.Background()
	p := New("test")()
	found := 0
	for _, newResource := range p.Resources(ctx) {
		r := newResource()
		var meta resource.MetadataResponse
		r.Metadata(ctx, resource.MetadataRequest{ProviderTypeName: "haven"}, &meta)
		var s resource.SchemaResponse
		r.Schema(ctx, resource.SchemaRequest{}, &s)
		blocks := requiredBlocks(ctx, s.Schema)
		if len(blocks) == 0 {
			continue
		}
		page := filepath.Join("..", "docs", "resources", strings.TrimPrefix(meta.TypeName, "haven_")+".md")
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		required, optional := schemaSection(string(b), "Required"), schemaSection(string(b), "Optional")
		for _, name := range blocks {
			found++
			prefix := "- `" + name + "` (Block, Required)"
			if !containsPrefix(required, prefix) {
				t.Errorf("%s: required block %s is not listed under Required as %q", page, name, prefix)
			}
			if containsPrefix(optional, "- `"+name+"` ") {
				t.Errorf("%s: required block %s is listed under Optional", page, name)
			}
		}
	}
	if found == 0 {
		t.Fatal("no resource has a required block: this test checks nothing (the validator lookup is broken?)")
	}
}

func containsPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// roadmapTerms name features that are planned but not built. The README
// and the provider's index page may mention them only under their
// "Roadmap" heading: a feature leaves this list in the change that ships
// it, with its guide.
var roadmapTerms = []string{"Hyper-V", "SQL Server"}

// TestDocsPromiseOnlyWhatExists holds the README and docs/index.md to
// issue 12's rule: every guide is linked from both, every relative link
// resolves (anchors included), and planned features appear only under
// the roadmap heading.
func TestDocsPromiseOnlyWhatExists(t *testing.T) {
	guides, err := filepath.Glob("../docs/guides/*.md")
	if err != nil || len(guides) == 0 {
		t.Fatalf("no guides under docs/guides: %v", err)
	}
	for _, page := range []struct{ path, guidePrefix string }{
		{"../README.md", "docs/guides/"},
		{"../docs/index.md", "guides/"},
	} {
		b, err := os.ReadFile(page.path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		links := markdownLinks(text)
		for _, g := range guides {
			want := page.guidePrefix + filepath.Base(g)
			if !slices.ContainsFunc(links, func(l string) bool { return strings.SplitN(l, "#", 2)[0] == want }) {
				t.Errorf("%s does not link the guide %s", page.path, want)
			}
		}
		for _, l := range links {
			if strings.Contains(l, "://") {
				continue
			}
			target, anchor, _ := strings.Cut(l, "#")
			file := page.path
			if target != "" {
				file = filepath.Join(filepath.Dir(page.path), target)
			}
			body, err := os.ReadFile(file)
			if err != nil {
				t.Errorf("%s links %q, which does not exist", page.path, l)
				continue
			}
			if anchor != "" && !slices.Contains(headingAnchors(string(body)), anchor) {
				t.Errorf("%s links %q: %s has no heading with that anchor", page.path, l, file)
			}
		}
		roadmap := strings.Index(text, "\n## Roadmap\n")
		if roadmap < 0 {
			t.Errorf("%s has no \"## Roadmap\" heading for the features still to come", page.path)
			continue
		}
		end := len(text)
		if next := strings.Index(text[roadmap+1:], "\n## "); next >= 0 {
			end = roadmap + 1 + next
		}
		outside := text[:roadmap] + text[end:]
		for _, term := range roadmapTerms {
			if i := strings.Index(outside, term); i >= 0 {
				t.Errorf("%s mentions %q outside its roadmap: %q", page.path, term, outside[max(0, i-60):min(len(outside), i+40)])
			}
		}
	}
}

var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

func markdownLinks(text string) []string {
	var out []string
	for _, m := range markdownLink.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return out
}

// headingAnchors are the anchors GitHub gives a page's headings: lower
// case, punctuation dropped, spaces as hyphens.
func headingAnchors(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}
