package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                = (*drFailoverResource)(nil)
	_ resource.ResourceWithConfigure   = (*drFailoverResource)(nil)
	_ resource.ResourceWithImportState = (*drFailoverResource)(nil)
)

// NewDRFailoverResource is the haven_dr_failover resource: a failover of a
// plan's VMs to AWS, run when the resource is created.
func NewDRFailoverResource() resource.Resource {
	return &drFailoverResource{}
}

type drFailoverResource struct {
	client *api.Client
}

type drFailoverModel struct {
	drRunArgs
	drRunResult
	ConfirmFailover    types.Bool `tfsdk:"confirm_failover"`
	TerminateOnDestroy types.Bool `tfsdk:"terminate_on_destroy"`
}

// mustConfirm refuses confirm_failover = false at plan time.
type mustConfirm struct{}

func (mustConfirm) Description(context.Context) string {
	return "must be true"
}

func (v mustConfirm) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (mustConfirm) ValidateBool(_ context.Context, req validator.BoolRequest, resp *validator.BoolResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() || req.ConfigValue.ValueBool() {
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Failover not confirmed",
		fmt.Sprintf("Attribute %s must be true: creating a haven_dr_failover launches the plan's VMs as production "+
			"instances in AWS, in the production subnets and with the production addresses. Set %s = true only "+
			"when that is what you want.", req.Path, req.Path))
}

func (r *drFailoverResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_dr_failover"
}

func (r *drFailoverResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	attrs, blocks := drRunSchema(ctx, "failover",
		"How long to wait for every machine to be ready, as a Go duration such as `90m`. Defaults to `60m`. When "+
			"it runs out, the failover keeps going on the server and apply fails.",
		"How long to wait, with `terminate_on_destroy = true`, for the failover's instances, volumes and images "+
			"to be removed. Defaults to `30m`.")
	attrs["confirm_failover"] = schema.BoolAttribute{
		MarkdownDescription: "Must be `true`: a guard against failing over by mistake, since creating this resource " +
			"launches production instances in AWS. Any other value fails the plan.",
		Required:   true,
		Validators: []validator.Bool{mustConfirm{}},
	}
	attrs["terminate_on_destroy"] = schema.BoolAttribute{
		MarkdownDescription: "What destroying the resource does in AWS. With `false` (the default) nothing: Terraform " +
			"forgets the failover and the instances keep running. With `true`, destroy terminates every instance the " +
			"failover launched and deletes their volumes and images, and waits for that. Changing it only updates the " +
			"state; set it to `true` and apply before a destroy that should remove the instances.",
		Optional: true,
		Computed: true,
		Default:  booldefault.StaticBool(false),
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Fails a `haven_dr_plan` over to AWS when the resource is created: every VM of the plan " +
			"is launched as a production EC2 instance where the plan says (subnet, private address, security " +
			"groups, tags, boot script), from its latest copy in AWS or from the recovery point `points` names " +
			"(copied into AWS first). For each machine the server registers an EC2 image (AMI) over the copy's EBS " +
			"snapshots, launches an instance from it and checks that it runs, passes EC2's status checks and " +
			"answers on its `probe_port`, boot group after boot group; then it deletes the images. The instances " +
			"and their EBS volumes are tagged `haven:run` with the run's id, and run, and cost money, until they " +
			"are removed. `confirm_failover = true` is required.\n\n" +
			"A plan has one failover at a time: while one is up (`state = \"ready\"`) the server refuses another " +
			"until the first is cleaned up.\n\n" +
			"Apply waits until every machine is ready (`timeouts.create`). If the failover fails, apply fails with " +
			"the reason and the resource is marked tainted; what the failover launched stays in AWS (`state = " +
			"\"failed\"`). The next apply continues the same run (same id): machines launched already are found by " +
			"their tags and not launched twice. (With `terminate_on_destroy = true`, that replacement first removes " +
			"what the failed run launched, and the new failover starts over.)\n\n" +
			"**By default, destroying this resource leaves everything running in AWS**: after a disaster those " +
			"instances are production. Terraform only forgets the failover and warns; remove the instances later " +
			"with `haven dr-runs cleanup <id> --confirm`. With `terminate_on_destroy = true`, destroy terminates " +
			"the instances and deletes their volumes, and waits for that (`timeouts.delete`).\n\n" +
			"Changing `plan_id`, `points` or `ready_timeout_minutes` replaces the resource, that is a new failover, " +
			"which the server refuses while the previous one is still up. A failover started outside Terraform can " +
			"be imported by its run id.",
		Attributes: attrs,
		Blocks:     blocks,
	}
}

func (r *drFailoverResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *drFailoverResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	const next = "Terraform marked the resource tainted; the next apply waits for this failover again."
	job, run := createDRRun[drFailoverModel](ctx, r.client, req, resp, "failover", next,
		func(points map[string]string, readyTimeout int, plan *drFailoverModel) (*api.DRRun, error) {
			run, err := r.client.StartDRFailover(ctx, plan.PlanID.ValueString(), api.DRFailoverRequest{
				Confirm: plan.ConfirmFailover.ValueBool(), Points: points, ReadyTimeoutMinutes: readyTimeout})
			// Validation refuses false; an unknown value that ends up
			// false reaches the server, which names its own field.
			if ae := (*api.Error)(nil); errors.As(err, &ae) && ae.Field == "confirm" {
				ae.Field = "confirm_failover"
			}
			return run, err
		})
	if job != nil && (job.State != api.JobSucceeded || run.State != api.DRRunReady) {
		resp.Diagnostics.AddError(fmt.Sprintf("Failover %s failed", run.ID), drRunFailure("failover", run, job)+
			fmt.Sprintf("\n\nWhat the failover launched stays in AWS. Terraform marked the resource tainted: the next "+
				"apply continues this failover under the same id. To remove what it launched instead: "+
				"`haven dr-runs cleanup %s --confirm`.", run.ID))
	}
}

func (r *drFailoverResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readDRRun[drFailoverModel](ctx, r.client, req, resp, api.DRRunFailover, "haven_dr_failover", func(m *drFailoverModel) {
		// An imported failover was confirmed when it was started.
		if m.ConfirmFailover.IsNull() {
			m.ConfirmFailover = types.BoolValue(true)
		}
		if m.TerminateOnDestroy.IsNull() {
			m.TerminateOnDestroy = types.BoolValue(false)
		}
	})
}

// Update records new values of terminate_on_destroy and timeouts (or,
// after an import, the adopted ready_timeout_minutes); nothing is sent to
// the server.
func (r *drFailoverResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	updateDRRun[drFailoverModel](ctx, req, resp)
}

// Delete forgets the failover, leaving its instances running, unless
// terminate_on_destroy says to remove them.
func (r *drFailoverResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state drFailoverModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()
	if state.TerminateOnDestroy.ValueBool() {
		timeout, diags := state.Timeouts.Delete(ctx, defaultDRDeleteTimeout)
		resp.Diagnostics.Append(diags...)
		if !resp.Diagnostics.HasError() {
			cleanUpDRRun(ctx, r.client, id, true, timeout, "failover", &resp.Diagnostics)
		}
		return
	}
	// Only looked at to say what stays; failing to look must not stop
	// Terraform from forgetting the failover.
	if run, err := r.client.DRRun(ctx, id); err == nil && run.State == api.DRRunCleaned {
		return
	}
	resp.Diagnostics.AddWarning("Failover "+id+" is still in AWS",
		fmt.Sprintf("Terraform forgot failover %s but did not stop or terminate anything: the instances it launched "+
			"and their EBS volumes stay in AWS, and running instances cost money. Once they are no longer needed "+
			"(after a failback, say), remove them with `haven dr-runs cleanup %s --confirm`. To have destroy remove "+
			"them, set terminate_on_destroy = true and apply before destroying.", id, id))
}

// ImportState takes the id of a failover run.
func (r *drFailoverResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	importDRRun(ctx, req, resp)
}
