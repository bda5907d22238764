package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/float64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// What haven_dr_test and haven_dr_failover share: both start a DR run of a
// plan when they are created, wait for its launch job, record the run, and
// refresh it from GET /v1/dr-runs/{id}.

// How long create and delete wait for a run's jobs when the configuration
// has no timeouts block. A run launches boot group after boot group, each
// machine allowed ready_timeout_minutes (15 by default).
const (
	defaultDRCreateTimeout = 60 * time.Minute
	defaultDRDeleteTimeout = 30 * time.Minute
)

// drPollInterval is how often a waiting create or delete asks for a job
// when the server does not hold the request until the job ends.
const drPollInterval = 500 * time.Millisecond

// drRunArgs are the arguments both run resources take.
type drRunArgs struct {
	PlanID              types.String   `tfsdk:"plan_id"`
	Points              types.Map      `tfsdk:"points"`
	ReadyTimeoutMinutes types.Int64    `tfsdk:"ready_timeout_minutes"`
	Timeouts            timeouts.Value `tfsdk:"timeouts"`
}

// drRunResult is what the server says of a run, as both resources record it.
type drRunResult struct {
	ID         types.String  `tfsdk:"id"`
	State      types.String  `tfsdk:"state"`
	Passed     types.Bool    `tfsdk:"passed"`
	RTOSeconds types.Float64 `tfsdk:"rto_seconds"`
	Error      types.String  `tfsdk:"error"`
	Machines   types.List    `tfsdk:"machines"`
	Leftovers  types.List    `tfsdk:"leftovers"`
}

var drRunMachineType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"name": types.StringType, "point_id": types.StringType, "instance_type": types.StringType,
	"subnet_id": types.StringType, "instance_id": types.StringType, "private_ip": types.StringType,
}}

var drResourceType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"kind": types.StringType, "id": types.StringType, "machine": types.StringType,
}}

// fill records a run as the server holds it; plan_id and points come from
// the run too, so an imported run has them.
func (r *drRunResult) fill(args *drRunArgs, run *api.DRRun) diag.Diagnostics {
	var diags diag.Diagnostics
	r.ID = types.StringValue(run.ID)
	r.State = types.StringValue(run.State)
	r.Passed = types.BoolPointerValue(run.Passed)
	r.RTOSeconds = types.Float64PointerValue(run.RTOSeconds)
	r.Error = optString(run.Error)
	var d diag.Diagnostics
	r.Machines, d = objectList(drRunMachineType, run.Machines, func(m api.DRRunMachine) map[string]attr.Value {
		return map[string]attr.Value{
			"name": types.StringValue(m.Name), "point_id": optString(m.PointID), "instance_type": optString(m.InstanceType),
			"subnet_id": optString(m.SubnetID), "instance_id": optString(m.InstanceID), "private_ip": optString(m.PrivateIP),
		}
	})
	diags.Append(d...)
	r.Leftovers, d = drResourcesValue(run.Leftovers)
	diags.Append(d...)
	args.PlanID = types.StringValue(run.PlanID)
	args.Points = optStringMap(run.Points)
	return diags
}

func drResourcesValue(rs []api.DRResource) (types.List, diag.Diagnostics) {
	return objectList(drResourceType, rs, func(r api.DRResource) map[string]attr.Value {
		return map[string]attr.Value{"kind": types.StringValue(r.Kind), "id": types.StringValue(r.ID), "machine": optString(r.Machine)}
	})
}

// descReplaceUnlessAdoptingRun describes the plan modifier of the
// arguments the server does not record on a run.
const descReplaceUnlessAdoptingRun = "Changing it starts a new run, except on the first plan after an import, " +
	"which adopts the configuration's value."

// replaceUnlessAdoptingInt64 replaces the resource when an argument the
// run does not record changes, but not on the first plan after an import,
// which takes the configuration's value as it is.
func replaceUnlessAdoptingInt64() planmodifier.Int64 {
	return int64planmodifier.RequiresReplaceIf(
		func(ctx context.Context, req planmodifier.Int64Request, resp *int64planmodifier.RequiresReplaceIfFuncResponse) {
			resp.RequiresReplace = !adopting(ctx, req.Private, req.StateValue, &resp.Diagnostics)
		}, descReplaceUnlessAdoptingRun, descReplaceUnlessAdoptingRun)
}

// drRunSchema is the schema both resources share: what is the run's kind
// in the descriptions ("DR test", "failover").
func drRunSchema(ctx context.Context, what, createDesc, deleteDesc string) (map[string]schema.Attribute, map[string]schema.Block) {
	keepString := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	timeoutsBlock := describedTimeouts(ctx, timeouts.Opts{Create: true, Delete: true,
		CreateDescription: createDesc, DeleteDescription: deleteDesc},
		"How long Terraform waits for the "+what+"'s jobs. Changing it does not start a new run.")
	attrs := map[string]schema.Attribute{
		"id": schema.StringAttribute{
			MarkdownDescription: "Id of the run on the server (`GET /v1/dr-runs/{id}`); also the id of its first job.",
			Computed:            true,
			PlanModifiers:       keepString,
		},
		"plan_id": schema.StringAttribute{
			MarkdownDescription: "Id of the `haven_dr_plan` to run. Changing it starts a new run. While the run has " +
				"resources in AWS, the plan cannot be deleted.",
			Required:      true,
			Validators:    []validator.String{objectID("DR plan", "haven_dr_plan.orders.id")},
			PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
		},
		"points": schema.MapAttribute{
			MarkdownDescription: "Recovery points to launch from instead of the latest copies in AWS, by machine name " +
				"(the plan's `vms[*].name`): machine name to recovery point id, such as a " +
				"`data.haven_recovery_point`'s id. The server copies each point into AWS first, as EBS snapshots; it " +
				"then stays the machine's copy until the next replication. Machines not named launch from their " +
				"latest copy. Changing it starts a new run.",
			ElementType: types.StringType,
			Optional:    true,
			Validators: []validator.Map{mapvalidator.SizeAtLeast(1),
				mapvalidator.ValueStringsAre(objectID("recovery point", "data.haven_recovery_point.before.id"))},
			PlanModifiers: []planmodifier.Map{mapplanmodifier.RequiresReplace()},
		},
		"ready_timeout_minutes": schema.Int64Attribute{
			MarkdownDescription: fmt.Sprintf("How long one machine may take from its launch until it runs, passes "+
				"EC2's status checks and answers on its `probe_port`, in minutes (1 to %d); a machine that takes longer "+
				"fails the %s. The server's default is %d. Changing it starts a new run.",
				api.MaxDRReadyTimeoutMinutes, what, api.DefaultDRReadyTimeoutMinutes),
			Optional:      true,
			Validators:    []validator.Int64{int64validator.Between(1, api.MaxDRReadyTimeoutMinutes)},
			PlanModifiers: []planmodifier.Int64{replaceUnlessAdoptingInt64()},
		},
		"state": schema.StringAttribute{
			MarkdownDescription: "How the run stands: `pending` (queued), `launching`, `ready` (every machine passed " +
				"its checks and its instances run), `failed` (a failover that did not finish; what it launched " +
				"stays), `failed_back` (a failover whose final `haven_dr_failback` pass ran: its instances are stopped, " +
				"not terminated), `cleaning`, `cleaned` (nothing the run created is left in AWS) or `cleanup_failed` " +
				"(see `leftovers`). Refreshed on every plan.",
			Computed:      true,
			PlanModifiers: keepString,
		},
		"passed": schema.BoolAttribute{
			MarkdownDescription: "Whether every machine launched and passed its checks; null until the launch ends.",
			Computed:            true,
			PlanModifiers:       []planmodifier.Bool{boolplanmodifier.UseStateForUnknown()},
		},
		"rto_seconds": schema.Float64Attribute{
			MarkdownDescription: "The recovery time achieved: seconds from the start of the run until its last " +
				"machine passed its checks. Null unless every machine did.",
			Computed:      true,
			PlanModifiers: []planmodifier.Float64{float64planmodifier.UseStateForUnknown()},
		},
		"error": schema.StringAttribute{
			MarkdownDescription: "Why the launch or the cleanup failed; null when nothing did.",
			Computed:            true,
			PlanModifiers:       keepString,
		},
		"machines": schema.ListNestedAttribute{
			MarkdownDescription: "The plan's machines as the run launched them.",
			Computed:            true,
			PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
			NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
				"name":          schema.StringAttribute{MarkdownDescription: "The machine's name in the plan.", Computed: true},
				"point_id":      schema.StringAttribute{MarkdownDescription: "The recovery point its disks hold.", Computed: true},
				"instance_type": schema.StringAttribute{MarkdownDescription: "Its EC2 instance type.", Computed: true},
				"subnet_id":     schema.StringAttribute{MarkdownDescription: "The subnet it launched in.", Computed: true},
				"instance_id": schema.StringAttribute{
					MarkdownDescription: "Its EC2 instance, once launched. The instance is tagged `haven:run` with the run's id.",
					Computed:            true,
				},
				"private_ip": schema.StringAttribute{MarkdownDescription: "Its private IPv4 address, once known.", Computed: true},
			}},
		},
		"leftovers": schema.ListNestedAttribute{
			MarkdownDescription: "What a failed cleanup left in AWS (state `cleanup_failed`); empty otherwise.",
			Computed:            true,
			PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
			NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
				"kind":    schema.StringAttribute{MarkdownDescription: "`instance`, `volume`, `image` or `snapshot`.", Computed: true},
				"id":      schema.StringAttribute{MarkdownDescription: "Its id in AWS.", Computed: true},
				"machine": schema.StringAttribute{MarkdownDescription: "The machine it belongs to, if any.", Computed: true},
			}},
		},
	}
	return attrs, map[string]schema.Block{"timeouts": timeoutsBlock}
}

// drRunModel is the model of haven_dr_test or haven_dr_failover: the
// shared parts are embedded, which promotes their methods.
type drRunModel[M any] interface {
	*M
	args() *drRunArgs
	result() *drRunResult
}

func (a *drRunArgs) args() *drRunArgs       { return a }
func (r *drRunResult) result() *drRunResult { return r }

// createDRRun starts a run with start (given the planned points and
// ready timeout), waits up to the create timeout for its launch job, and
// records the run in state whatever happens (an error that follows marks
// the resource tainted). It returns the job and the run as they ended;
// job is nil when the run could not be started or followed, in which case
// diags says why, and next what happens then.
func createDRRun[M any, P drRunModel[M]](ctx context.Context, c *api.Client, req resource.CreateRequest, resp *resource.CreateResponse,
	what, next string, start func(points map[string]string, readyTimeout int, plan *M) (*api.DRRun, error)) (*api.Job, *api.DRRun) {
	var plan M
	diags := &resp.Diagnostics
	diags.Append(req.Plan.Get(ctx, &plan)...)
	if diags.HasError() {
		return nil, nil
	}
	args, result := P(&plan).args(), P(&plan).result()
	timeout, d := args.Timeouts.Create(ctx, defaultDRCreateTimeout)
	diags.Append(d...)
	var points map[string]string
	if isSet(args.Points) {
		diags.Append(args.Points.ElementsAs(ctx, &points, false)...)
	}
	if diags.HasError() {
		return nil, nil
	}
	run, err := start(points, int(args.ReadyTimeoutMinutes.ValueInt64()), &plan)
	if err != nil {
		addAPIError(diags, fmt.Sprintf("Could not start a %s of plan %s", what, args.PlanID.ValueString()), err,
			schemaPaths(req.Plan.Schema.(schema.Schema)))
		return nil, nil
	}
	diags.Append(result.fill(args, run)...)
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	job, werr := c.WaitJob(waitCtx, run.JobID, drPollInterval)
	if latest, err := c.DRRun(ctx, run.ID); err == nil {
		run = latest
		diags.Append(result.fill(args, run)...)
	}
	diags.Append(resp.State.Set(ctx, &plan)...)
	switch {
	case errors.Is(werr, context.DeadlineExceeded):
		diags.AddError(fmt.Sprintf("Timed out waiting for %s %s", what, run.ID),
			fmt.Sprintf("The %s is still %s on the Haven server after %s, and keeps going there (job %s: "+
				"`haven jobs show %s`). Raise timeouts.create to wait longer. %s",
				what, run.State, timeout, run.JobID, run.JobID, next))
		return nil, run
	case werr != nil:
		addAPIError(diags, fmt.Sprintf("Could not follow %s %s (job %s)", what, run.ID, run.JobID), werr, nil)
		return nil, run
	}
	return job, run
}

// readDRRun refreshes a run resource; a run the server no longer knows is
// forgotten, and a run of the other kind is refused (on import). defaults
// fills what an import leaves null and the server does not record.
func readDRRun[M any, P drRunModel[M]](ctx context.Context, c *api.Client, req resource.ReadRequest, resp *resource.ReadResponse,
	kind, resourceType string, defaults func(*M)) {
	var state M
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := P(&state).result().ID.ValueString()
	run, err := c.DRRun(ctx, id)
	if api.IsNotFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Could not read DR run "+id, err, nil)
		return
	}
	if run.Kind != kind {
		resp.Diagnostics.AddError(fmt.Sprintf("DR run %s is not a %s", run.ID, kind),
			fmt.Sprintf("DR run %s is a %s; %s only takes %s runs.", run.ID, run.Kind, resourceType, kind))
		return
	}
	resp.Diagnostics.Append(P(&state).result().fill(P(&state).args(), run)...)
	defaults(&state)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// updateDRRun records the arguments that change in place (or, after an
// import, the adopted ones); nothing is sent to the server, and the run's
// attributes stay as they were read.
func updateDRRun[M any, P drRunModel[M]](ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	recordUpdate(ctx, req, resp, func(plan, state *M) { *P(plan).result() = *P(state).result() })
}

// drRunFailure explains a run whose launch did not succeed: the job's
// error (which says what failed and what became of it), the run's when it
// adds something, and what the cleanup left.
func drRunFailure(what string, run *api.DRRun, job *api.Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "The %s %s of DR plan %s ended %s (job %s %s)", what, run.ID, run.PlanName, run.State, job.ID, job.State)
	if job.Error != "" {
		fmt.Fprintf(&b, ": %s", job.Error)
	}
	b.WriteString(".")
	if run.Error != "" && !strings.Contains(job.Error, run.Error) {
		fmt.Fprintf(&b, "\nRun error: %s.", run.Error)
	}
	for _, m := range run.Machines {
		fmt.Fprintf(&b, "\n  - %s: ", m.Name)
		if m.InstanceID == "" {
			b.WriteString("not launched")
		} else {
			fmt.Fprintf(&b, "instance %s", m.InstanceID)
		}
	}
	writeLeftovers(&b, run)
	return b.String()
}

// writeLeftovers lists what a failed cleanup left in AWS, if anything.
func writeLeftovers(b *strings.Builder, run *api.DRRun) {
	if len(run.Leftovers) == 0 {
		return
	}
	b.WriteString("\n\nLeft in AWS (tagged haven:run = " + run.ID + "):")
	for _, l := range run.Leftovers {
		fmt.Fprintf(b, "\n  - %s %s", l.Kind, l.ID)
		if l.Machine != "" {
			fmt.Fprintf(b, " (machine %s)", l.Machine)
		}
	}
}

// cleanUpDRRun removes what a run created and waits for it, up to timeout:
// a run still launching is waited for first (the server refuses to clean
// it up meanwhile), and a run already cleaned needs nothing. It fails,
// listing what is left, unless the run ends cleaned.
func cleanUpDRRun(ctx context.Context, c *api.Client, id string, confirm bool, timeout time.Duration, what string, diags *diag.Diagnostics) {
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	run, err := c.DRRun(ctx, id)
	if api.IsNotFound(err) {
		return
	}
	if err != nil {
		addAPIError(diags, "Could not read DR run "+id, err, nil)
		return
	}
	// wait waits for a job of the run; reread reads the run again. Each
	// says whether it could.
	wait := func(job, doing string) bool {
		_, err := c.WaitJob(waitCtx, job, drPollInterval)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			diags.AddError(fmt.Sprintf("Timed out waiting for %s %s", what, id),
				fmt.Sprintf("Job %s is still %s on the Haven server after %s and keeps going there (`haven jobs show %s`). "+
					"Raise timeouts.delete to wait longer; destroy again to wait for it.", job, doing, timeout, job))
		case err != nil:
			addAPIError(diags, fmt.Sprintf("Could not follow job %s of DR run %s", job, id), err, nil)
		}
		return err == nil
	}
	reread := func() bool {
		if run, err = c.DRRun(ctx, id); err != nil {
			addAPIError(diags, "Could not read DR run "+id, err, nil)
		}
		return err == nil
	}
	// A test that is not kept cleans up as its launch ends.
	if (run.State == api.DRRunPending || run.State == api.DRRunLaunching) && (!wait(run.JobID, "launching the run") || !reread()) {
		return
	}
	if run.State != api.DRRunCleaned {
		job, err := c.CleanupDRRun(ctx, id, confirm)
		if api.IsNotFound(err) {
			return
		}
		if err != nil {
			addAPIError(diags, "Could not clean up DR run "+id, err, nil)
			return
		}
		if !wait(job.ID, "removing what the run created") || !reread() {
			return
		}
	}
	if run.State != api.DRRunCleaned {
		var b strings.Builder
		fmt.Fprintf(&b, "The cleanup of %s %s ended with the run %s", what, id, run.State)
		if run.Error != "" {
			fmt.Fprintf(&b, ": %s", run.Error)
		}
		b.WriteString(".")
		writeLeftovers(&b, run)
		b.WriteString("\n\nThe resource stays in the state: destroy again to retry, or remove the resources by hand.")
		diags.AddError(fmt.Sprintf("Could not clean up %s %s", what, id), b.String())
	}
}

// importDRRun takes the id of a run; Read checks it and fills in the rest.
func importDRRun(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !uuidShaped.MatchString(req.ID) {
		resp.Diagnostics.AddError("Invalid DR run id",
			fmt.Sprintf("A DR run is imported by its id, as GET /v1/dr-runs lists it, got %q.", req.ID))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), strings.ToLower(req.ID))...)
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, adoptedKey, []byte("true"))...)
}
