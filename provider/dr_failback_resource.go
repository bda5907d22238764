package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                   = (*drFailbackResource)(nil)
	_ resource.ResourceWithConfigure      = (*drFailbackResource)(nil)
	_ resource.ResourceWithValidateConfig = (*drFailbackResource)(nil)
)

// NewDRFailbackResource is the haven_dr_failback resource: one failback
// pass of a failover, run when the resource is created.
func NewDRFailbackResource() resource.Resource {
	return &drFailbackResource{}
}

type drFailbackResource struct {
	client *api.Client
}

type drFailbackModel struct {
	ID           types.String   `tfsdk:"id"`
	RunID        types.String   `tfsdk:"run_id"`
	VCenterID    types.String   `tfsdk:"vcenter_id"`
	Datastore    types.String   `tfsdk:"datastore"`
	ResourcePool types.String   `tfsdk:"resource_pool"`
	Host         types.String   `tfsdk:"host"`
	Folder       types.String   `tfsdk:"folder"`
	NetworkMap   types.Map      `tfsdk:"network_map"`
	Names        types.Map      `tfsdk:"names"`
	Final        types.Bool     `tfsdk:"final"`
	PowerOn      types.Bool     `tfsdk:"power_on"`
	State        types.String   `tfsdk:"state"`
	Passes       types.Int64    `tfsdk:"passes"`
	VMs          types.List     `tfsdk:"vms"`
	Timeouts     timeouts.Value `tfsdk:"timeouts"`
}

var drFailbackVMType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"machine": types.StringType, "vm_name": types.StringType, "vm_moref": types.StringType, "vm_instance_uuid": types.StringType,
	"point_id": types.StringType, "blocks_read": types.Int64Type, "bytes_read": types.Int64Type, "powered_on": types.BoolType,
}}

func (r *drFailbackResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_dr_failback"
}

func (r *drFailbackResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	timeoutsBlock := describedTimeouts(ctx, timeouts.Opts{Create: true,
		CreateDescription: "How long to wait for the pass, as a Go duration such as `4h`. Defaults to `60m`. When it " +
			"runs out, the pass keeps going on the server and apply fails."},
		"How long Terraform waits for the pass's job. Changing it does not run a new pass.")
	replaceString := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	replaceBool := []planmodifier.Bool{boolplanmodifier.RequiresReplace()}
	replaceMap := []planmodifier.Map{mapplanmodifier.RequiresReplace()}
	keepString := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	const firstPass = " Used by the pass that creates the VMs (the first); later passes write over those VMs where " +
		"they are. Changing it runs a new pass."
	placement := func(desc, field string, set func(*api.VMRestore, string)) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc + firstPass, Optional: true, PlanModifiers: replaceString,
			Validators: []validator.String{vmRestoreCheck(field, set)}}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Runs one failback pass of a `haven_dr_failover` when the resource is created: the " +
			"failover's instances are copied back into VMs on vCenter. For each machine the server snapshots the " +
			"instance's EBS volumes, reads them with the EBS direct APIs, records what it read as a recovery point " +
			"of the machine's protected VM, and writes that point to vCenter through the VM restore path.\n\n" +
			"The first pass creates the VMs, powered off, while the instances keep running; each later pass reads " +
			"only the blocks that changed since the one before and writes them over the same VMs. The final pass " +
			"(`final = true`) stops the instances first, so that nothing changes behind it, copies what changed, " +
			"and with `power_on = true` starts the VMs; the failover's run then becomes `failed_back`. Its " +
			"instances are stopped, not terminated: once the VMs are checked, remove them by destroying the " +
			"`haven_dr_failover` with `terminate_on_destroy = true`, or with `haven dr-runs cleanup <id> --confirm`.\n\n" +
			"The usual sequence is one resource with `final = false`, applied while production runs in AWS, then " +
			"`final = true` and `power_on = true` in a maintenance window: since every argument but `timeouts` " +
			"replaces the resource when it changes, that apply runs the final pass. `terraform apply " +
			"-replace=...` runs another pass with the same arguments. A run that was failed back refuses further " +
			"passes (409).\n\n" +
			"Apply waits for the pass (`timeouts.create`). A pass that fails, or that does not end in time, fails " +
			"the apply with the reason and the resource is marked tainted: the next apply runs the pass again, " +
			"which continues where this one stopped (a VM it was creating is taken over, not made twice).\n\n" +
			"`state`, `passes` and `vms` are read from the run on every plan, so they also show passes run " +
			"outside Terraform (`haven dr-runs failback`).\n\n" +
			"Destroying the resource only removes it from the state: the VMs stay on vCenter, and the instances " +
			"stay as they are in AWS. A pass is an event of its run whose arguments the server does not keep, so " +
			"the resource cannot be imported.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Id of the pass's job on the server (`haven jobs show <id>`).",
				Computed:            true,
				PlanModifiers:       keepString,
			},
			"run_id": schema.StringAttribute{
				MarkdownDescription: "Id of the failover to fail back: a `haven_dr_failover`'s id (its run), whose " +
					"machines are all up (`state = \"ready\"`). Changing it runs a new pass.",
				Required:      true,
				Validators:    []validator.String{objectID("DR run", "haven_dr_failover.orders.id")},
				PlanModifiers: replaceString,
			},
			"vcenter_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_vcenter` the VMs are written to. Changing it runs a new pass.",
				Required:            true,
				Validators:          []validator.String{objectID("vCenter", "haven_vcenter.prod.id")},
				PlanModifiers:       replaceString,
			},
			"datastore": schema.StringAttribute{
				MarkdownDescription: "Name of the datastore of the VMs' disks; by default where the original VM's " +
					"disks were." + firstPass,
				Optional:      true,
				Validators:    []validator.String{stringvalidator.LengthAtLeast(1)},
				PlanModifiers: replaceString,
			},
			"resource_pool": placement("Inventory path of the VMs' resource pool, such as `/DC0/host/DC0_C0/Resources`; "+
				"by default the original VM's.", "vm.resource_pool", func(v *api.VMRestore, s string) { v.ResourcePool = s }),
			"host": placement("Inventory path of the VMs' ESXi host, such as `/DC0/host/DC0_C0/DC0_C0_H0`; by default "+
				"the original VM's.", "vm.host", func(v *api.VMRestore, s string) { v.Host = s }),
			"folder": placement("Inventory path of the VMs' folder, such as `/DC0/vm/failback`; by default the "+
				"original VM's.", "vm.folder", func(v *api.VMRestore, s string) { v.Folder = s }),
			"network_map": schema.MapAttribute{
				MarkdownDescription: "Networks of the VMs: network name of the original VM to target network name, " +
					"such as `{ \"VM Network\" = \"Production\" }`. Networks not in the map keep their names." + firstPass,
				ElementType:   types.StringType,
				Optional:      true,
				Validators:    []validator.Map{mapvalidator.ValueStringsAre(stringvalidator.LengthAtLeast(1))},
				PlanModifiers: replaceMap,
			},
			"names": schema.MapAttribute{
				MarkdownDescription: "Names of the VMs, by machine name (the plan's `vms[*].name`), such as " +
					"`{ \"db-01\" = \"db-01-restored\" }`; a machine not named gets its name followed by `-failback`. " +
					"A name the vCenter already has fails the pass." + firstPass,
				ElementType:   types.StringType,
				Optional:      true,
				Validators:    []validator.Map{mapvalidator.SizeAtLeast(1), mapvalidator.ValueStringsAre(objectName()...)},
				PlanModifiers: replaceMap,
			},
			"final": schema.BoolAttribute{
				MarkdownDescription: "Run the final pass, the cut-over: the instances are stopped before their " +
					"volumes are snapshotted, and the run becomes `failed_back`. Defaults to `false`. Changing it runs " +
					"a new pass, so setting it to `true` on a resource that ran a first pass runs the final one.",
				Optional:      true,
				Computed:      true,
				Default:       booldefault.StaticBool(false),
				PlanModifiers: replaceBool,
			},
			"power_on": schema.BoolAttribute{
				MarkdownDescription: "Power the VMs on at the end of the final pass; requires `final = true`. Defaults " +
					"to `false`. Changing it runs a new pass.",
				Optional:      true,
				Computed:      true,
				Default:       booldefault.StaticBool(false),
				PlanModifiers: replaceBool,
			},
			"state": schema.StringAttribute{
				MarkdownDescription: "How the run's failback stands: `synced` (the VMs hold the instances' data as " +
					"of the last pass; the instances still run), `completed` (the final pass ran: the instances are " +
					"stopped), `syncing` (a pass is running) or `failed` (the last pass failed).",
				Computed:      true,
				PlanModifiers: keepString,
			},
			"passes": schema.Int64Attribute{
				MarkdownDescription: "How many passes of the run's failback completed, this one included.",
				Computed:            true,
				PlanModifiers:       []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
			"vms": schema.ListNestedAttribute{
				MarkdownDescription: "Each machine's VM on vCenter, and what the last pass copied into it.",
				Computed:            true,
				PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"machine":          schema.StringAttribute{MarkdownDescription: "The machine's name in the plan.", Computed: true},
					"vm_name":          schema.StringAttribute{MarkdownDescription: "Name of its VM on vCenter.", Computed: true},
					"vm_moref":         schema.StringAttribute{MarkdownDescription: "Managed object reference of the VM, such as `vm-42`.", Computed: true},
					"vm_instance_uuid": schema.StringAttribute{MarkdownDescription: "Instance UUID of the VM, for a `haven_protected_vm` of it or the `haven_vm` data source.", Computed: true},
					"point_id": schema.StringAttribute{
						MarkdownDescription: "The recovery point of the machine's protected VM that the last pass " +
							"recorded from the instance's volumes and wrote to the VM.",
						Computed: true,
					},
					"blocks_read": schema.Int64Attribute{MarkdownDescription: "How many EBS blocks the last pass read.", Computed: true},
					"bytes_read":  schema.Int64Attribute{MarkdownDescription: "How many bytes the last pass read from EBS.", Computed: true},
					"powered_on":  schema.BoolAttribute{MarkdownDescription: "Whether the final pass powered the VM on.", Computed: true},
				}},
			},
		},
		Blocks: map[string]schema.Block{"timeouts": timeoutsBlock},
	}
}

func (r *drFailbackResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig refuses power_on without final at plan time, as the
// server would.
func (r *drFailbackResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var final, powerOn types.Bool
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("final"), &final)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("power_on"), &powerOn)...)
	if resp.Diagnostics.HasError() || final.IsUnknown() || !powerOn.ValueBool() || final.ValueBool() {
		return
	}
	resp.Diagnostics.AddAttributeError(path.Root("power_on"), "power_on without final",
		"Attribute power_on needs final = true: the VMs are started only after the final pass, once the instances "+
			"are stopped, so that the two never run at once.")
}

// fill records the run's failback as the server holds it; with no run,
// the pass's results are null.
func (m *drFailbackModel) fill(run *api.DRRun) diag.Diagnostics {
	m.State, m.Passes, m.VMs = types.StringNull(), types.Int64Null(), types.ListNull(drFailbackVMType)
	if run == nil || run.Failback == nil {
		return nil
	}
	fb := run.Failback
	m.State, m.Passes = types.StringValue(fb.State), types.Int64Value(int64(fb.Passes))
	var diags diag.Diagnostics
	m.VMs, diags = objectList(drFailbackVMType, fb.VMs, func(v api.DRFailbackVM) map[string]attr.Value {
		return map[string]attr.Value{
			"machine": types.StringValue(v.Machine), "vm_name": types.StringValue(v.VMName), "vm_moref": optString(v.VMMoRef),
			"vm_instance_uuid": optString(v.VMInstanceUUID), "point_id": optString(v.PointID),
			"blocks_read": types.Int64Value(v.BlocksRead), "bytes_read": types.Int64Value(v.BytesRead), "powered_on": types.BoolValue(v.PoweredOn),
		}
	})
	return diags
}

// request is the failback request the model's arguments make.
func (m *drFailbackModel) request(ctx context.Context, diags *diag.Diagnostics) api.DRFailbackRequest {
	req := api.DRFailbackRequest{VCenterID: m.VCenterID.ValueString(), Datastore: m.Datastore.ValueString(),
		ResourcePool: m.ResourcePool.ValueString(), Host: m.Host.ValueString(), Folder: m.Folder.ValueString(),
		Final: m.Final.ValueBool(), PowerOn: m.PowerOn.ValueBool()}
	if isSet(m.NetworkMap) {
		diags.Append(m.NetworkMap.ElementsAs(ctx, &req.NetworkMap, false)...)
	}
	if isSet(m.Names) {
		diags.Append(m.Names.ElementsAs(ctx, &req.Names, false)...)
	}
	return req
}

// Create queues the pass, waits for its job up to the create timeout, and
// records the run's failback in state whatever happens (an error that
// follows marks the resource tainted).
func (r *drFailbackResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan drFailbackModel
	diags := &resp.Diagnostics
	diags.Append(req.Plan.Get(ctx, &plan)...)
	if diags.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Create(ctx, defaultDRCreateTimeout)
	diags.Append(d...)
	request := plan.request(ctx, diags)
	if diags.HasError() {
		return
	}
	runID := plan.RunID.ValueString()
	job, err := r.client.FailbackDRRun(ctx, runID, request)
	if err != nil {
		addAPIError(diags, "Could not start a failback of DR run "+runID, err, schemaPaths(req.Plan.Schema.(schema.Schema)))
		return
	}
	plan.ID = types.StringValue(job.ID)
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ended, werr := r.client.WaitJob(waitCtx, job.ID, drPollInterval)
	run, rerr := r.client.DRRun(ctx, runID)
	if rerr != nil {
		run = nil
	}
	diags.Append(plan.fill(run)...)
	diags.Append(resp.State.Set(ctx, &plan)...)
	const tainted = "Terraform marked the resource tainted: the next apply runs the pass again, which continues " +
		"where this one stopped."
	switch {
	case errors.Is(werr, context.DeadlineExceeded):
		diags.AddError(fmt.Sprintf("Timed out waiting for failback pass %s of DR run %s", job.ID, runID),
			fmt.Sprintf("The pass is still running on the Haven server after %s, and keeps going there (`haven jobs "+
				"show %s`). Raise timeouts.create to wait longer. %s", timeout, job.ID, tainted))
	case werr != nil:
		addAPIError(diags, fmt.Sprintf("Could not follow failback pass %s of DR run %s", job.ID, runID), werr, nil)
	case ended.State != api.JobSucceeded:
		var b strings.Builder
		fmt.Fprintf(&b, "Failback pass %s of DR run %s ended %s", job.ID, runID, ended.State)
		if ended.Error != "" {
			fmt.Fprintf(&b, ": %s", ended.Error)
		}
		b.WriteString(".")
		if run != nil && run.Failback != nil && run.Failback.Error != "" && !strings.Contains(ended.Error, run.Failback.Error) {
			fmt.Fprintf(&b, "\nFailback error: %s.", run.Failback.Error)
		}
		diags.AddError(fmt.Sprintf("Failback pass %s failed", job.ID), b.String()+"\n\n"+tainted)
	case rerr != nil:
		addAPIError(diags, "Could not read DR run "+runID, rerr, nil)
	}
}

// Read refreshes the run's failback; a run the server no longer knows is
// forgotten.
func (r *drFailbackResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "DR run", func(m *drFailbackModel) string { return m.RunID.ValueString() },
		r.client.DRRun, (*drFailbackModel).fill)
}

// Update only records new timeouts: every other argument replaces the
// resource.
func (r *drFailbackResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	recordUpdate(ctx, req, resp, func(plan, state *drFailbackModel) {
		plan.ID, plan.State, plan.Passes, plan.VMs = state.ID, state.State, state.Passes, state.VMs
	})
}

// Delete forgets the pass: what it wrote to vCenter stays, as a completed
// copy does.
func (r *drFailbackResource) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {
}
