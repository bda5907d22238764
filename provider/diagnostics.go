package provider

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// fieldIndex matches the list index the server appends to a field name
// (full.days_of_week[2]). Our schema models those lists as sets, which have
// no index, so the diagnostic goes to the whole attribute.
var fieldIndex = regexp.MustCompile(`\[[0-9]+\]`)

// schemaPaths lists the dotted paths of every attribute and block of a
// resource schema, two levels deep, which is as deep as Haven's specs go.
// The server names invalid fields with the same dotted JSON names.
func schemaPaths(s schema.Schema) map[string]bool {
	out := map[string]bool{}
	for name := range s.Attributes {
		out[name] = true
	}
	for name, b := range s.Blocks {
		out[name] = true
		if sb, ok := b.(schema.SingleNestedBlock); ok {
			for inner := range sb.Attributes {
				out[name+"."+inner] = true
			}
		}
	}
	return out
}

// addAPIError turns an error from the Haven API into a diagnostic. When the
// server names the offending field and the field exists in the schema, the
// diagnostic is attached to that attribute so Terraform points at the line
// of configuration to fix.
func addAPIError(diags *diag.Diagnostics, summary string, err error, known map[string]bool) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		diags.AddError(summary, err.Error())
		return
	}
	detail := ae.Message
	switch {
	case ae.Status == http.StatusUnauthorized:
		detail += "\n\nCheck the provider's token (or " + EnvToken + "): the server did not accept it."
	case ae.Status == http.StatusForbidden:
		detail += "\n\nThe provider's token does not have a role that allows this operation."
	case ae.Code == api.CodeStaleVersion:
		detail += "\n\nThe object was changed outside Terraform while this run was going on. Run terraform plan again."
	}
	// A stale version names the "version" field, but that is not something
	// the configuration can fix, so it is not pinned to an attribute.
	if ae.Field != "" && ae.Code != api.CodeStaleVersion {
		field := fieldIndex.ReplaceAllString(ae.Field, "")
		if known[field] {
			p := path.Empty()
			for _, step := range strings.Split(field, ".") {
				p = p.AtName(step)
			}
			diags.AddAttributeError(p, summary, fmt.Sprintf("%s: %s", ae.Field, detail))
			return
		}
	}
	if ae.Field != "" {
		detail = fmt.Sprintf("%s: %s", ae.Field, detail)
	}
	diags.AddError(summary, detail)
}
