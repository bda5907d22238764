package provider

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
