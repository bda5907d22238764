package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource              = (*restoreResource)(nil)
	_ resource.ResourceWithConfigure = (*restoreResource)(nil)
)

// defaultRestoreTimeout bounds how long create waits for the restore job
// when the configuration has no timeouts block.
const defaultRestoreTimeout = 30 * time.Minute

// restorePollInterval is how often a waiting create asks for the job.
const restorePollInterval = 500 * time.Millisecond

// maxWarningsShown keeps a failed restore's diagnostic readable: a restore
// that fails on a whole tree has one warning per file.
const maxWarningsShown = 5

// Conflict policies of a restore.
var restoreConflicts = []string{"overwrite", "skip", "rename"}

// NewRestoreResource is the haven_restore resource: one restore of a
// recovery point, run when the resource is created.
func NewRestoreResource() resource.Resource {
	return &restoreResource{}
}

type restoreResource struct {
	client *api.Client
}

type restoreModel struct {
	ID                 types.String   `tfsdk:"id"`
	PointID            types.String   `tfsdk:"point_id"`
	TargetFileServerID types.String   `tfsdk:"target_file_server_id"`
	TargetPath         types.String   `tfsdk:"target_path"`
	Paths              types.List     `tfsdk:"paths"`
	Conflict           types.String   `tfsdk:"conflict"`
	Wait               types.Bool     `tfsdk:"wait"`
	State              types.String   `tfsdk:"state"`
	FilesRestored      types.Int64    `tfsdk:"files_restored"`
	BytesRestored      types.Int64    `tfsdk:"bytes_restored"`
	Timeouts           timeouts.Value `tfsdk:"timeouts"`
}

func (r *restoreResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_restore"
}

func (r *restoreResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	// The timeouts package builds the block without a description.
	timeoutsBlock := timeouts.Block(ctx, timeouts.Opts{
		Create: true,
		CreateDescription: "How long to wait for the restore to finish, as a Go duration such as `90m` " +
			"or `2h`. Defaults to `30m`. When it runs out, the restore keeps running on the server.",
	})
	if b, ok := timeoutsBlock.(schema.SingleNestedBlock); ok {
		b.MarkdownDescription = "How long Terraform waits for the restore when `wait` is true."
		timeoutsBlock = b
	}
	keepStateString := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	keepStateInt := []planmodifier.Int64{int64planmodifier.UseStateForUnknown()}
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}

	resp.Schema = schema.Schema{
		MarkdownDescription: "Restores a file recovery point (made by a `haven_fileset`'s backups) when the " +
			"resource is created, and by default waits for the restore to finish. A restore is an event, not " +
			"a lasting object: every change of what is restored, or where, replaces the resource, which runs " +
			"a new restore. Changing `wait` or `timeouts` only updates the record.\n\n" +
			"Without `target_path`, files go back to their **original locations** and, with the default " +
			"`conflict = \"overwrite\"`, replace what is there. With `target_path`, the backed-up paths are " +
			"recreated below it: `/srv/share/a.txt` restored to `/restore` becomes `/restore/srv/share/a.txt`.\n\n" +
			"**Destroying this resource does not delete or undo restored files; it only removes the record " +
			"from state.** A restore job still running at that point (with `wait = false`, or after the create " +
			"timeout ran out) is left running on the server; stop it with `haven jobs cancel <id>` if needed.\n\n" +
			"If the restore fails, is canceled or is skipped, apply fails with the job's error and the resource " +
			"is marked tainted, so the next apply restores again. Reading the resource refreshes the job's " +
			"`state` and progress; if the server no longer knows the job, the resource is removed from state " +
			"and the next apply restores again.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Id of the restore job on the server (see `haven jobs show <id>`).",
				Computed:            true,
				PlanModifiers:       keepStateString,
			},
			"point_id": schema.StringAttribute{
				MarkdownDescription: "Id of the recovery point to restore (see `haven points list`). Changing it " +
					"runs a new restore.",
				Required:      true,
				Validators:    []validator.String{objectID("recovery point", "the id shown by haven points list")},
				PlanModifiers: replace,
			},
			"target_file_server_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_file_server` to restore to. Defaults to the file server the " +
					"point was backed up from. It must run the same operating system family. Changing it runs a " +
					"new restore.",
				Optional:      true,
				Validators:    []validator.String{objectID("file server", "haven_file_server.nas.id")},
				PlanModifiers: replace,
			},
			"target_path": schema.StringAttribute{
				MarkdownDescription: "Absolute directory on the target file server below which the backed-up " +
					"paths are recreated. Unset restores every file to its original location. The server " +
					"refuses a path that is not a directory (or cannot become one), is not writable or lacks " +
					"the space the point needs. Changing it runs a new restore.",
				Optional:      true,
				Validators:    []validator.String{restorePath()},
				PlanModifiers: replace,
			},
			"paths": schema.ListAttribute{
				MarkdownDescription: "Restore only these paths, absolute as they were backed up, and everything " +
					"below them. Unset restores the whole point. Changing it runs a new restore.",
				ElementType: types.StringType,
				Optional:    true,
				Validators: []validator.List{
					listvalidator.SizeAtLeast(1),
					listvalidator.ValueStringsAre(restorePath()),
				},
				PlanModifiers: []planmodifier.List{listplanmodifier.RequiresReplace()},
			},
			"conflict": schema.StringAttribute{
				MarkdownDescription: "What to do with a file that already exists at the destination: " +
					"`overwrite` it, `skip` it, or `rename` the restored copy (to `<name>.restored-1`, or the " +
					"next free number). Defaults to `overwrite`. " +
					"Changing it runs a new restore.",
				Optional:      true,
				Computed:      true,
				Default:       stringdefault.StaticString("overwrite"),
				Validators:    []validator.String{stringvalidator.OneOf(restoreConflicts...)},
				PlanModifiers: replace,
			},
			"wait": schema.BoolAttribute{
				MarkdownDescription: "Wait for the restore to finish, and fail the apply unless it succeeds. " +
					"With `false`, apply returns as soon as the server has queued the job and `state` is " +
					"refreshed on later plans. Defaults to `true`. Changing it does not restore again.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(true),
			},
			"state": schema.StringAttribute{
				MarkdownDescription: "State of the restore job: `queued`, `running`, `succeeded`, `failed`, " +
					"`canceled` or `skipped`.",
				Computed:      true,
				PlanModifiers: keepStateString,
			},
			"files_restored": schema.Int64Attribute{
				MarkdownDescription: "Number of files restored so far.",
				Computed:            true,
				PlanModifiers:       keepStateInt,
			},
			"bytes_restored": schema.Int64Attribute{
				MarkdownDescription: "Number of bytes of file data restored so far.",
				Computed:            true,
				PlanModifiers:       keepStateInt,
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeoutsBlock,
		},
	}
}

func (r *restoreResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (m *restoreModel) request(ctx context.Context, diags *diag.Diagnostics) api.RestoreRequest {
	req := api.RestoreRequest{
		PointID:            m.PointID.ValueString(),
		TargetFileServerID: m.TargetFileServerID.ValueString(),
		TargetPath:         m.TargetPath.ValueString(),
		Conflict:           m.Conflict.ValueString(),
	}
	if !m.Paths.IsNull() {
		diags.Append(m.Paths.ElementsAs(ctx, &req.Paths, false)...)
	}
	return req
}

func (m *restoreModel) fill(j *api.Job) {
	m.ID = types.StringValue(j.ID)
	m.State = types.StringValue(j.State)
	m.FilesRestored = types.Int64Value(j.Progress.FilesDone)
	m.BytesRestored = types.Int64Value(j.Progress.BytesDone)
}

func (r *restoreResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan restoreModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultRestoreTimeout)
	resp.Diagnostics.Append(diags...)
	restore := plan.request(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	job, err := r.client.Restore(ctx, restore)
	if err != nil {
		addAPIError(&resp.Diagnostics, "Could not start restore of recovery point "+restore.PointID, err,
			schemaPaths(req.Plan.Schema.(schema.Schema)))
		return
	}
	plan.fill(job)
	if !plan.Wait.ValueBool() {
		resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
		return
	}

	final, err := r.client.WaitJob(ctx, job.ID, restorePollInterval)
	if final != nil {
		plan.fill(final)
	}
	// The job exists whatever happens next: recording it (tainted, if
	// an error follows) keeps its id in the state for the operator.
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		resp.Diagnostics.AddError("Timed out waiting for restore job "+job.ID,
			fmt.Sprintf("Restore job %s is still %s on the Haven server after %s (%d files, %d bytes restored so far). "+
				"It keeps running: follow it with `haven jobs show %s` or stop it with `haven jobs cancel %s`. "+
				"Raise timeouts.create to wait longer, or set wait = false not to wait.",
				job.ID, plan.State.ValueString(), timeout, plan.FilesRestored.ValueInt64(), plan.BytesRestored.ValueInt64(),
				job.ID, job.ID))
	case err != nil:
		addAPIError(&resp.Diagnostics, "Could not follow restore job "+job.ID, err, nil)
	case final.State != api.JobSucceeded:
		resp.Diagnostics.AddError(fmt.Sprintf("Restore job %s %s", job.ID, final.State), jobFailure(final))
	}
}

// jobFailure explains a restore job that finished without succeeding.
func jobFailure(j *api.Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Restore job %s of recovery point %s ended %s", j.ID, j.PointID, j.State)
	if j.Error != "" {
		fmt.Fprintf(&b, ": %s", j.Error)
	}
	fmt.Fprintf(&b, ".\n%d files and %d bytes were restored.", j.Progress.FilesDone, j.Progress.BytesDone)
	if len(j.Warnings) > 0 {
		b.WriteString("\n\nWarnings:")
		for _, w := range j.Warnings[:min(len(j.Warnings), maxWarningsShown)] {
			b.WriteString("\n  - " + w)
		}
		if n := len(j.Warnings) - maxWarningsShown; n > 0 {
			fmt.Fprintf(&b, "\n  ... and %d more: `haven jobs show %s` lists them all.", n, j.ID)
		}
	}
	b.WriteString("\n\nRestored files are left in place. The next apply restores again.")
	return b.String()
}

func (r *restoreResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state restoreModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	j, err := r.client.GetJob(ctx, state.ID.ValueString())
	if api.IsNotFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Could not read restore job "+state.ID.ValueString(), err, nil)
		return
	}
	state.fill(j)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update only records new values of wait and timeouts, the arguments that
// do not replace the resource; nothing is sent to the server.
func (r *restoreResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state restoreModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	plan.ID, plan.State, plan.FilesRestored, plan.BytesRestored = state.ID, state.State, state.FilesRestored, state.BytesRestored
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Delete forgets the restore. Restored files are the user's data now, and a
// job still running is left alone: canceling it halfway would leave a
// partly restored tree that nobody asked for. The job is only looked at to
// say so; failing to look must not stop Terraform from forgetting it.
func (r *restoreResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state restoreModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	j, err := r.client.GetJob(ctx, state.ID.ValueString())
	if err == nil && !j.Finished() {
		resp.Diagnostics.AddWarning("Restore job "+j.ID+" is still "+j.State,
			fmt.Sprintf("Terraform forgot the restore, but job %s is still %s on the Haven server and will go on "+
				"restoring files. Stop it with `haven jobs cancel %s` if it is no longer wanted.", j.ID, j.State, j.ID))
	}
}
