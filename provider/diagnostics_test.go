package provider

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestAddAPIError covers the field spellings the server can send, including
// nested and indexed ones that plan-time validation normally catches first.
func TestAddAPIError(t *testing.T) {
	var sr resource.SchemaResponse
	NewBackupPolicyResource().Schema(context.Background(), resource.SchemaRequest{}, &sr)
	known := schemaPaths(sr.Schema)

	for _, tc := range []struct {
		err      error
		wantPath path.Path // empty: no attribute
		wantText string
	}{
		{api.FieldError("full.at", "must be HH:MM"), path.Root("full").AtName("at"), "full.at: must be HH:MM"},
		{api.FieldError("full.days_of_week[1]", "listed twice"), path.Root("full").AtName("days_of_week"), "full.days_of_week[1]: listed twice"},
		{api.FieldError("retention.daily_days", "at least one"), path.Root("retention").AtName("daily_days"), "retention.daily_days: at least one"},
		{api.FieldError("timezone", "bad"), path.Root("timezone"), "timezone: bad"},
		{api.FieldError("no_such_field", "odd"), path.Empty(), "no_such_field: odd"},
		{api.StaleVersion("backup policy", 3, 4), path.Empty(), "Run terraform plan again"},
		{errors.New("connection refused"), path.Empty(), "connection refused"},
	} {
		var diags diag.Diagnostics
		addAPIError(&diags, "Could not do it", tc.err, known)
		if len(diags) != 1 {
			t.Fatalf("%v: got %d diagnostics", tc.err, len(diags))
		}
		d := diags[0]
		var got path.Path
		if wp, ok := d.(diag.DiagnosticWithPath); ok {
			got = wp.Path()
		}
		if got.String() != tc.wantPath.String() {
			t.Errorf("%v: attached to %q, want %q", tc.err, got, tc.wantPath)
		}
		if d.Summary() != "Could not do it" || !strings.Contains(d.Detail(), tc.wantText) {
			t.Errorf("%v: got %q / %q, want detail containing %q", tc.err, d.Summary(), d.Detail(), tc.wantText)
		}
	}
}
