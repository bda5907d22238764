package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// readResource refreshes a resource's state from the server, the same way
// for every object kind: an object deleted outside Terraform is forgotten,
// so the next plan creates it again, and any other change shows as drift.
func readResource[M, O any](ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse, label string,
	id func(*M) string, get func(context.Context, string) (*O, error), fill func(*M, *O) diag.Diagnostics) {
	var state M
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	o, err := get(ctx, id(&state))
	if api.IsNotFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Could not read "+label+" "+id(&state), err, nil)
		return
	}
	resp.Diagnostics.Append(fill(&state, o)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// deleteResource deletes a resource's object; one already gone is fine.
func deleteResource[M any](ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse, label string,
	id func(*M) (id, name string), del func(context.Context, string) error) {
	var state M
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	objectID, name := id(&state)
	if err := del(ctx, objectID); err != nil && !api.IsNotFound(err) {
		addAPIError(&resp.Diagnostics, "Could not delete "+label+" "+name, err, nil)
	}
}

// saveWrite ends a Create or Update the same way for every object kind: a
// failed call becomes diagnostics on the attributes the server named; an
// answer fills the planned model's computed values and becomes the state.
func saveWrite[M, O any](ctx context.Context, diags *diag.Diagnostics, state *tfsdk.State, planSchema any,
	summary string, plan *M, answer *O, err error, fill func(*M, *O) diag.Diagnostics) {
	if err != nil {
		addAPIError(diags, summary, err, schemaPaths(planSchema.(schema.Schema)))
		return
	}
	diags.Append(fill(plan, answer)...)
	diags.Append(state.Set(ctx, plan)...)
}

// fillOnly adapts a model's fill method, which cannot fail, to the fill
// callbacks of readResource and saveWrite.
func fillOnly[M, O any](fill func(*M, *O)) func(*M, *O) diag.Diagnostics {
	return func(m *M, o *O) diag.Diagnostics {
		fill(m, o)
		return nil
	}
}

// secretModel is a resource model with a write-only secret, such as a
// password: secret is its value in the configuration, and resendSecret
// tells whether an Update must send it again.
type secretModel[M any] interface {
	*M
	secret() types.String
	resendSecret(prior *M) bool
}

// secretWrite reads what a Create (state nil) or an Update of a resource
// with a write-only secret needs: the plan, the prior state and the secret
// to send. Write-only values exist only in the configuration, never in the
// plan. An Update sends an empty secret, which tells the server to keep the
// one it holds, unless resendSecret says otherwise: sending it every time
// would let an unrelated change silently replace the stored secret with
// whatever the configuration holds today.
func secretWrite[M any, P secretModel[M]](ctx context.Context, diags *diag.Diagnostics,
	plan tfsdk.Plan, config tfsdk.Config, state *tfsdk.State) (planned, prior M, secret string) {
	var cfg M
	diags.Append(plan.Get(ctx, &planned)...)
	diags.Append(config.Get(ctx, &cfg)...)
	if state != nil {
		diags.Append(state.Get(ctx, &prior)...)
		if !P(&planned).resendSecret(&prior) {
			return planned, prior, ""
		}
	}
	return planned, prior, P(&cfg).secret().ValueString()
}

// recordUpdate is the Update of a resource that records an event (a
// restore, a DR run, a failback pass), whose only changes in place are
// Terraform's own (timeouts, say) or arguments adopted after an import:
// nothing is sent to the server. keep copies the state's results onto the
// plan, which becomes the state; from then on the configuration's
// arguments are the state's, so a change of them replaces the resource.
func recordUpdate[M any](ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse, keep func(plan, state *M)) {
	var plan, state M
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	keep(&plan, &state)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, adoptedKey, nil)...)
}

// describedTimeouts is a timeouts block with the description the timeouts
// package does not give it.
func describedTimeouts(ctx context.Context, opts timeouts.Opts, desc string) schema.Block {
	b := timeouts.Block(ctx, opts)
	if sb, ok := b.(schema.SingleNestedBlock); ok {
		sb.MarkdownDescription = desc
		return sb
	}
	return b
}

// objectList is a list attribute of objects of type typ, one per item.
func objectList[T any](typ types.ObjectType, items []T, attrs func(T) map[string]attr.Value) (types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	values := make([]attr.Value, len(items))
	for i, item := range items {
		o, d := types.ObjectValue(typ.AttrTypes, attrs(item))
		diags.Append(d...)
		values[i] = o
	}
	list, d := types.ListValue(typ, values)
	diags.Append(d...)
	return list, diags
}
