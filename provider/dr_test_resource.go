package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                = (*drTestResource)(nil)
	_ resource.ResourceWithConfigure   = (*drTestResource)(nil)
	_ resource.ResourceWithImportState = (*drTestResource)(nil)
)

// NewDRTestResource is the haven_dr_test resource: a DR drill of a plan,
// run when the resource is created and cleaned up when it is destroyed.
func NewDRTestResource() resource.Resource {
	return &drTestResource{}
}

type drTestResource struct {
	client *api.Client
}

type drTestModel struct {
	drRunArgs
	drRunResult
	KeepMinutes types.Int64 `tfsdk:"keep_minutes"`
}

func (r *drTestResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_dr_test"
}

func (r *drTestResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	attrs, blocks := drRunSchema(ctx, "DR test",
		"How long to wait for the drill to end, as a Go duration such as `90m`. Defaults to `60m`. When it runs "+
			"out, the drill keeps going on the server and apply fails.",
		"How long to wait for the drill's instances, volumes and images to be removed. Defaults to `30m`.")
	attrs["keep_minutes"] = schema.Int64Attribute{
		MarkdownDescription: fmt.Sprintf("How long a drill that passed keeps its instances running for inspection, in "+
			"minutes (at most %d, a week). With 0, the default, the server removes everything the drill created in "+
			"AWS as soon as it ends, and `state` is `cleaned` by the time apply returns. Above 0, the instances keep "+
			"running (and cost money) until the resource is destroyed or the time is up, whichever comes first. "+
			"Changing it runs a new drill.", api.MaxDRKeepMinutes),
		Optional:      true,
		Computed:      true,
		Default:       int64default.StaticInt64(0),
		Validators:    []validator.Int64{int64validator.Between(0, api.MaxDRKeepMinutes)},
		PlanModifiers: []planmodifier.Int64{replaceUnlessAdoptingInt64()},
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Runs a DR test (a drill) of a `haven_dr_plan` when the resource is created, and removes " +
			"what it left in AWS when the resource is destroyed.\n\n" +
			"The drill launches every VM of the plan as an EC2 instance in the plan's `test_network`, never in the " +
			"production subnets: for each machine the server registers an EC2 image (AMI) over the EBS snapshots " +
			"of its latest copy (or of the recovery point `points` names, copied into AWS first), launches an " +
			"instance from it, boot group after boot group, and checks that the instance runs, passes EC2's status " +
			"checks and answers on the plan's `probe_port`. Everything it creates (instances, their EBS volumes, " +
			"images) is tagged `haven:run` with the run's id. `rto_seconds` records how long the recovery took.\n\n" +
			"With `keep_minutes = 0` (the default) the server terminates the instances and deletes their volumes " +
			"and images as soon as the drill ends, passed or not: the resource then only records the result. With " +
			"`keep_minutes` above 0, a drill that passed leaves its instances running (`state = \"ready\"`) until " +
			"the resource is destroyed or the time is up.\n\n" +
			"Apply waits for the drill (`timeouts.create`). A drill that fails, or that does not end in time, fails " +
			"the apply with the reason; the resource is recorded (`passed = false`) and marked tainted, so the next " +
			"apply runs a new drill.\n\n" +
			"Destroying the resource terminates whatever the drill still runs in AWS and deletes its volumes and " +
			"images, and waits for that (`timeouts.delete`); a drill still launching is waited for first. If " +
			"anything cannot be removed, destroy fails listing it, and the resource stays in the state so that " +
			"destroy can be retried.\n\n" +
			"Every argument but `timeouts` runs a new drill when it changes. A run started outside Terraform can be " +
			"imported by its id; the first plan after an import adopts the configuration's `keep_minutes` and " +
			"`ready_timeout_minutes`, which the server does not record.",
		Attributes: attrs,
		Blocks:     blocks,
	}
}

func (r *drTestResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *drTestResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	const next = "Terraform marked the resource tainted: the next apply, or destroy, waits for the drill to end and " +
		"removes what it left in AWS; the next apply then runs a new drill."
	job, run := createDRRun[drTestModel](ctx, r.client, req, resp, "DR test", next,
		func(points map[string]string, readyTimeout int, plan *drTestModel) (*api.DRRun, error) {
			return r.client.StartDRTest(ctx, plan.PlanID.ValueString(), api.DRTestRequest{Points: points,
				KeepMinutes: int(plan.KeepMinutes.ValueInt64()), ReadyTimeoutMinutes: readyTimeout})
		})
	if job != nil && (job.State != api.JobSucceeded || run.Passed == nil || !*run.Passed) {
		resp.Diagnostics.AddError(fmt.Sprintf("DR test %s failed", run.ID), drRunFailure("DR test", run, job)+
			"\n\nTerraform marked the resource tainted: the next apply runs a new drill.")
	}
}

func (r *drTestResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readDRRun[drTestModel](ctx, r.client, req, resp, api.DRRunTest, "haven_dr_test", func(*drTestModel) {})
}

// Update only records new timeouts (or, after an import, the adopted
// arguments): everything else replaces the resource.
func (r *drTestResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	updateDRRun[drTestModel](ctx, req, resp)
}

// Delete removes what the drill left in AWS, and waits for it.
func (r *drTestResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state drTestModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultDRDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	cleanUpDRRun(ctx, r.client, state.ID.ValueString(), false, timeout, "DR test", &resp.Diagnostics)
}

// ImportState takes the id of a DR test run.
func (r *drTestResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	importDRRun(ctx, req, resp)
}
