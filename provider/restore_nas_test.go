package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestAccRestoreResource_nasPlan plans restores of NAS points: the nas
// block's conflict defaults to overwrite, the file restore's conflict is
// null beside it, and paths select what is restored as for a file point.
func TestAccRestoreResource_nasPlan(t *testing.T) {
	srv := startParallel(t)
	const point, share = "0b7c3e9a-2f41-4d8e-b6a5-7c1d9e3f5a20", "5e1a9c47-2d8b-4f36-b0e2-7c4d1f9a3b58"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: providerConfig(srv) + `
resource "haven_restore" "same_place" {
  point_id = "` + point + `"
  nas {}
}

resource "haven_restore" "elsewhere" {
  point_id = "` + point + `"
  paths    = ["/reports/2025"]
  nas {
    share_id = "` + share + `"
    path     = "restored/2026-03-01"
    conflict = "rename"
  }
}
`,
			ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction("haven_restore.same_place", plancheck.ResourceActionCreate),
				plancheck.ExpectKnownValue("haven_restore.same_place", at("conflict"), knownvalue.Null()),
				plancheck.ExpectKnownValue("haven_restore.same_place", at("nas", "conflict"), knownvalue.StringExact("overwrite")),
				plancheck.ExpectKnownValue("haven_restore.same_place", at("nas", "share_id"), knownvalue.Null()),
				plancheck.ExpectKnownValue("haven_restore.elsewhere", at("conflict"), knownvalue.Null()),
				plancheck.ExpectKnownValue("haven_restore.elsewhere", at("nas", "conflict"), knownvalue.StringExact("rename")),
				plancheck.ExpectKnownValue("haven_restore.elsewhere", at("nas", "path"), knownvalue.StringExact("restored/2026-03-01")),
				plancheck.ExpectKnownValue("haven_restore.elsewhere", at("paths", 0), knownvalue.StringExact("/reports/2025")),
			}},
			PlanOnly:           true,
			ExpectNonEmptyPlan: true,
		}},
	})
}

// TestAccRestoreResource_nasInvalid: what the nas block rules out, and its
// fields' syntax, fail the plan on the argument at fault.
func TestAccRestoreResource_nasInvalid(t *testing.T) {
	const id = "6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a"
	step := func(body string, want ...string) resource.TestStep {
		return resource.TestStep{
			Config:      offlineProviderConfig + "resource \"haven_restore\" \"test\" {\n  point_id = \"" + id + "\"\n" + body + "\n}\n",
			ExpectError: errorLike(want...),
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			step("target_path = \"/restore\"\nnas {}", `Attribute "target_path" cannot be specified when "nas" is specified`),
			step("conflict = \"skip\"\nnas {}", `Attribute "conflict" cannot be specified when "nas" is specified`),
			step("target_file_server_id = \""+id+"\"\nnas {}", `Attribute "target_file_server_id" cannot be specified when "nas" is specified`),
			step("database {}\nnas {}", `Attribute "database" cannot be specified when "nas" is specified`),
			step("vm {\n  name = \"copy\"\n}\nnas {}", `Attribute "vm" cannot be specified when "nas" is specified`),
			step("nas {\n  path = \"/restored\"\n}", "Attribute nas.path must be a directory inside the share, relative to its root"),
			step("nas {\n  path = \"../elsewhere\"\n}", "Attribute nas.path must be a directory inside the share"),
			step("nas {\n  conflict = \"merge\"\n}", "Attribute nas.conflict value must be one of"),
			step("nas {\n  share_id = \"projects\"\n}", "Attribute nas.share_id must be the id of a NAS share", "not a name"),
		},
	})
}

// TestRestoreRequestNAS: the nas block becomes the request's nas, and no
// file restore's conflict goes with it.
func TestRestoreRequestNAS(t *testing.T) {
	m := restoreModel{PointID: types.StringValue("p"), Conflict: types.StringNull(),
		Paths: types.ListValueMust(types.StringType, nil),
		NAS:   &restoreNASModel{ShareID: types.StringValue("s"), Path: types.StringValue("restored"), Conflict: types.StringValue("skip")}}
	var diags diag.Diagnostics
	req := m.request(context.Background(), &diags)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if req.NAS == nil || *req.NAS != (api.NASRestore{ShareID: "s", Path: "restored", Conflict: "skip"}) || req.Conflict != "" ||
		req.Database != nil || req.VM != nil {
		t.Fatalf("request of a nas block: %+v (nas %+v)", req, req.NAS)
	}
	if err := req.Validate(); err != nil {
		t.Fatalf("the server refuses what the provider sends: %v", err)
	}
}
