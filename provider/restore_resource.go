package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/objectvalidator"
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
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                   = (*restoreResource)(nil)
	_ resource.ResourceWithConfigure      = (*restoreResource)(nil)
	_ resource.ResourceWithValidateConfig = (*restoreResource)(nil)
	_ resource.ResourceWithImportState    = (*restoreResource)(nil)
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

// fileRestoreArgs are the arguments that only mean something for a file
// point; the vm block rules them out.
var fileRestoreArgs = []string{"target_file_server_id", "target_path", "paths", "conflict"}

// vmModeArgs lists the vm arguments each mode uses (besides mode and
// vcenter_id). The server ignores the others, so setting one is a mistake
// worth reporting at plan time: `name` with mode original would otherwise
// silently restore over the original VM under its old name.
var vmModeArgs = map[string][]string{
	api.VMRestoreNew:      {"name", "datastore", "resource_pool", "host", "folder", "network_map", "power_on"},
	api.VMRestoreOriginal: {"overwrite"},
	api.VMRestoreDisk:     {"disk_key", "target_instance_uuid", "datastore"},
}

// NewRestoreResource is the haven_restore resource: one restore of a
// recovery point, run when the resource is created.
func NewRestoreResource() resource.Resource {
	return &restoreResource{}
}

type restoreResource struct {
	client *api.Client
}

type restoreModel struct {
	ID                     types.String     `tfsdk:"id"`
	PointID                types.String     `tfsdk:"point_id"`
	TargetFileServerID     types.String     `tfsdk:"target_file_server_id"`
	TargetPath             types.String     `tfsdk:"target_path"`
	Paths                  types.List       `tfsdk:"paths"`
	Conflict               types.String     `tfsdk:"conflict"`
	VM                     *restoreVMModel  `tfsdk:"vm"`
	Database               *restoreDBModel  `tfsdk:"database"`
	NAS                    *restoreNASModel `tfsdk:"nas"`
	Wait                   types.Bool       `tfsdk:"wait"`
	State                  types.String     `tfsdk:"state"`
	FilesRestored          types.Int64      `tfsdk:"files_restored"`
	BytesRestored          types.Int64      `tfsdk:"bytes_restored"`
	RestoredVMName         types.String     `tfsdk:"restored_vm_name"`
	RestoredVMInstanceUUID types.String     `tfsdk:"restored_vm_instance_uuid"`
	RestoredVMMoRef        types.String     `tfsdk:"restored_vm_moref"`
	Timeouts               timeouts.Value   `tfsdk:"timeouts"`
}

type restoreVMModel struct {
	Mode               types.String `tfsdk:"mode"`
	VCenterID          types.String `tfsdk:"vcenter_id"`
	Name               types.String `tfsdk:"name"`
	Datastore          types.String `tfsdk:"datastore"`
	ResourcePool       types.String `tfsdk:"resource_pool"`
	Host               types.String `tfsdk:"host"`
	Folder             types.String `tfsdk:"folder"`
	NetworkMap         types.Map    `tfsdk:"network_map"`
	PowerOn            types.Bool   `tfsdk:"power_on"`
	Overwrite          types.Bool   `tfsdk:"overwrite"`
	DiskKey            types.Int64  `tfsdk:"disk_key"`
	TargetInstanceUUID types.String `tfsdk:"target_instance_uuid"`
}

// restoreDBModel is the database block: how to restore a point of a
// database set.
type restoreDBModel struct {
	TargetDatabaseServerID types.String `tfsdk:"target_database_server_id"`
	DataDir                types.String `tfsdk:"data_dir"`
	Port                   types.Int64  `tfsdk:"port"`
	PointInTime            types.String `tfsdk:"point_in_time"`
	RestorePoint           types.String `tfsdk:"restore_point"`
	LSN                    types.String `tfsdk:"lsn"`
	XID                    types.String `tfsdk:"xid"`
	EndState               types.String `tfsdk:"end_state"`
	Overwrite              types.Bool   `tfsdk:"overwrite"`
	Verify                 types.Bool   `tfsdk:"verify"`
	RollForward            types.Bool   `tfsdk:"roll_forward"`
}

// restoreNASModel is the nas block: how to restore a point of a NAS share.
type restoreNASModel struct {
	ShareID  types.String `tfsdk:"share_id"`
	Path     types.String `tfsdk:"path"`
	Conflict types.String `tfsdk:"conflict"`
}

// dbRestoreTargets are the database block's recovery targets, of which at
// most one may be given.
var dbRestoreTargets = []string{"point_in_time", "restore_point", "lsn", "xid"}

func (r *restoreResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_restore"
}

func (r *restoreResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	// The timeouts package builds the block without a description.
	timeoutsBlock := describedTimeouts(ctx, timeouts.Opts{
		Create: true,
		CreateDescription: "How long to wait for the restore to finish, as a Go duration such as `90m` " +
			"or `2h`. Defaults to `30m`. When it runs out, the restore keeps running on the server.",
	}, "How long Terraform waits for the restore when `wait` is true.")
	keepStateString := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	keepStateInt := []planmodifier.Int64{int64planmodifier.UseStateForUnknown()}
	replaceUnlessAdopting := stringplanmodifier.RequiresReplaceIf(
		func(ctx context.Context, req planmodifier.StringRequest, resp *stringplanmodifier.RequiresReplaceIfFuncResponse) {
			resp.RequiresReplace = !adopting(ctx, req.Private, req.StateValue, &resp.Diagnostics)
		}, descReplaceUnlessAdopting, descReplaceUnlessAdopting)
	replace := []planmodifier.String{replaceUnlessAdopting}
	boolReplace := []planmodifier.Bool{boolplanmodifier.RequiresReplaceIf(
		func(ctx context.Context, req planmodifier.BoolRequest, resp *boolplanmodifier.RequiresReplaceIfFuncResponse) {
			resp.RequiresReplace = !adopting(ctx, req.Private, req.StateValue, &resp.Diagnostics)
		}, descReplaceUnlessAdopting, descReplaceUnlessAdopting)}
	noVM := make([]path.Expression, len(fileRestoreArgs))
	for i, a := range fileRestoreArgs {
		noVM[i] = path.MatchRoot(a)
	}
	noDatabase := append(slices.Clone(noVM), path.MatchRoot("vm"))
	// A NAS restore selects paths as a file restore does, but writes into
	// a share, as its block says.
	noNAS := []path.Expression{path.MatchRoot("target_file_server_id"), path.MatchRoot("target_path"),
		path.MatchRoot("conflict"), path.MatchRoot("vm"), path.MatchRoot("database")}
	int64Replace := []planmodifier.Int64{int64planmodifier.RequiresReplaceIf(
		func(ctx context.Context, req planmodifier.Int64Request, resp *int64planmodifier.RequiresReplaceIfFuncResponse) {
			resp.RequiresReplace = !adopting(ctx, req.Private, req.StateValue, &resp.Diagnostics)
		}, descReplaceUnlessAdopting, descReplaceUnlessAdopting)}

	resp.Schema = schema.Schema{
		MarkdownDescription: "Restores a recovery point when the resource is created, and by default waits for the " +
			"restore to finish: a file point (made by a `haven_fileset`'s backups) back onto a file server; " +
			"with a `vm` block, a point of a `haven_protected_vm` as a new VM, over the original VM, or as one " +
			"disk attached to another VM; or, with a `database` block, a point of a `haven_database_set` as a " +
			"data directory on a database server's host, as it was at the point or at an instant, a named " +
			"restore point, an LSN or a transaction the logs cover; or, with a `nas` block, a point of a " +
			"`haven_nas_share` into its own share or another one. A restore is an event, not a lasting object: every change of what is " +
			"restored, or where, replaces the resource, which runs a new restore. Changing `wait` or `timeouts` " +
			"only updates the record.\n\n" +
			"Without `target_path`, files go back to their **original locations** and, with the default " +
			"`conflict = \"overwrite\"`, replace what is there. With `target_path`, the backed-up paths are " +
			"recreated below it: `/srv/share/a.txt` restored to `/restore` becomes `/restore/srv/share/a.txt`.\n\n" +
			"The server checks a VM restore against the vCenter before it queues it: a VM name already taken, a " +
			"running original VM or a missing target VM fail the apply at once, on the argument at fault.\n\n" +
			"**Destroying this resource does not delete or undo restored files or VMs; it only removes the " +
			"record from state.** A restore job still running at that point (with `wait = false`, or after the " +
			"create timeout ran out) is left running on the server; stop it with `haven jobs cancel <id>` if needed.\n\n" +
			"If the restore fails, is canceled or is skipped, apply fails with the job's error and the resource " +
			"is marked tainted, so the next apply restores again. Reading the resource refreshes the job's " +
			"`state` and progress; if the server no longer knows the job, the resource is removed from state " +
			"and the next apply restores again.\n\n" +
			"A restore run outside Terraform (`haven restore`, the API) can be imported by its job id. Haven " +
			"models a restore as a resource with import rather than as a Terraform action: actions need " +
			"Terraform 1.14, and this provider supports Terraform 1.11 and OpenTofu; a resource also keeps the " +
			"job's id, state and results where plans can read them. The server's job record names the recovery " +
			"point but not the rest of the request, so the first plan after an import adopts the configuration's " +
			"`target_file_server_id`, `target_path`, `paths`, `conflict`, `vm`, `database` and `nas` as they are, without restoring " +
			"again; only a different `point_id` plans a new restore. Later changes replace the resource as usual.",
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
					"new restore. File points only.",
				Optional:      true,
				Validators:    []validator.String{objectID("file server", "haven_file_server.nas.id")},
				PlanModifiers: replace,
			},
			"target_path": schema.StringAttribute{
				MarkdownDescription: "Absolute directory on the target file server below which the backed-up " +
					"paths are recreated. Unset restores every file to its original location. The server " +
					"refuses a path that is not a directory (or cannot become one), is not writable or lacks " +
					"the space the point needs. On a Windows file server it may be a drive path (`D:\\restore`). " +
					"Changing it runs a new restore. File points only.",
				Optional:      true,
				Validators:    []validator.String{restorePath()},
				PlanModifiers: replace,
			},
			"paths": schema.ListAttribute{
				MarkdownDescription: "Restore only these paths, absolute as they were backed up, and everything " +
					"below them. Unset restores the whole point. Changing it runs a new restore. File and NAS points only. " +
					"A path whose name is not valid UTF-8 is written Go-quoted, as job warnings show it: " +
					"`\"\\\"/data/x_\\\\xff.txt\\\"\"`.",
				ElementType: types.StringType,
				Optional:    true,
				Validators: []validator.List{
					listvalidator.SizeAtLeast(1),
					listvalidator.ValueStringsAre(restoreSelection()),
				},
				PlanModifiers: []planmodifier.List{listplanmodifier.RequiresReplaceIf(
					func(ctx context.Context, req planmodifier.ListRequest, resp *listplanmodifier.RequiresReplaceIfFuncResponse) {
						resp.RequiresReplace = !adopting(ctx, req.Private, req.StateValue, &resp.Diagnostics)
					}, descReplaceUnlessAdopting, descReplaceUnlessAdopting)},
			},
			"conflict": schema.StringAttribute{
				MarkdownDescription: "What to do with a file that already exists at the destination: " +
					"`overwrite` it, `skip` it, or `rename` the restored copy (to `<name>.restored-1`, or the " +
					"next free number). Defaults to `overwrite` for a file point, and is null for a VM, database or NAS " +
					"restore (a NAS restore's is `nas.conflict`). " +
					"Changing it runs a new restore.",
				Optional:      true,
				Computed:      true,
				Validators:    []validator.String{stringvalidator.OneOf(restoreConflicts...)},
				PlanModifiers: []planmodifier.String{fileRestoreDefault{"overwrite"}, replaceUnlessAdopting},
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
				MarkdownDescription: "Number of files restored so far; for a VM restore, the number of disks " +
					"once it has succeeded.",
				Computed:      true,
				PlanModifiers: keepStateInt,
			},
			"bytes_restored": schema.Int64Attribute{
				MarkdownDescription: "Number of bytes of file or disk data restored so far.",
				Computed:            true,
				PlanModifiers:       keepStateInt,
			},
			"restored_vm_name": schema.StringAttribute{
				MarkdownDescription: "Name of the VM the restore made or wrote to: the new VM (mode `new_vm`), " +
					"the original VM (`original`) or the VM that got the disk (`disk`). Known once the restore " +
					"has succeeded; null for a file restore.",
				Computed:      true,
				PlanModifiers: []planmodifier.String{vmResultPlan{}},
			},
			"restored_vm_instance_uuid": schema.StringAttribute{
				MarkdownDescription: "Instance UUID of that VM, for a `haven_protected_vm` of a restored VM, " +
					"or to find it with the `haven_vm` data source. Null for a file restore.",
				Computed:      true,
				PlanModifiers: []planmodifier.String{vmResultPlan{}},
			},
			"restored_vm_moref": schema.StringAttribute{
				MarkdownDescription: "Managed object reference of that VM in its vCenter (such as `vm-42`). " +
					"Null for a file restore.",
				Computed:      true,
				PlanModifiers: []planmodifier.String{vmResultPlan{}},
			},
		},
		Blocks: map[string]schema.Block{
			"vm": schema.SingleNestedBlock{
				MarkdownDescription: "Restores a point of a `haven_protected_vm` as `mode` says: a VM point needs " +
					"this block, and other points must not have it. It rules out `target_file_server_id`, " +
					"`target_path`, `paths` and `conflict`. Changing anything in it runs a new restore.",
				Validators: []validator.Object{objectvalidator.ConflictsWith(noVM...)},
				PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplaceIf(
					func(ctx context.Context, req planmodifier.ObjectRequest, resp *objectplanmodifier.RequiresReplaceIfFuncResponse) {
						resp.RequiresReplace = !adopting(ctx, req.Private, req.StateValue, &resp.Diagnostics)
					}, descReplaceUnlessAdopting, descReplaceUnlessAdopting)},
				Attributes: map[string]schema.Attribute{
					"mode": schema.StringAttribute{
						MarkdownDescription: "How to restore the point. `new_vm` (the default) builds a new VM " +
							"named `name` from the point's configuration and disks, placed as `folder`, " +
							"`resource_pool`, `host` and `datastore` say (each defaults to the original VM's). " +
							"`original` overwrites the original VM's disks with the point's; the VM must be powered " +
							"off and `overwrite` must be true. `disk` attaches one disk of the point (`disk_key`) " +
							"as a new disk to the VM `target_instance_uuid`, overwriting nothing.",
						Optional:      true,
						Computed:      true,
						Default:       stringdefault.StaticString(api.VMRestoreNew),
						Validators:    []validator.String{stringvalidator.OneOf(api.VMRestoreNew, api.VMRestoreOriginal, api.VMRestoreDisk)},
						PlanModifiers: replace,
					},
					"vcenter_id": schema.StringAttribute{
						MarkdownDescription: "Id of the `haven_vcenter` to restore into. Defaults to the protected " +
							"VM's vCenter; mode `original` only works there.",
						Optional:      true,
						Validators:    []validator.String{objectID("vCenter", "haven_vcenter.prod.id")},
						PlanModifiers: replace,
					},
					"name": schema.StringAttribute{
						MarkdownDescription: "Name of the new VM (mode `new_vm`, where it is required). The server " +
							"refuses a name the folder already has, or whose disk files already exist on the datastore.",
						Optional:      true,
						Validators:    []validator.String{vmRestoreCheck("vm.name", func(v *api.VMRestore, s string) { v.Name = s })},
						PlanModifiers: replace,
					},
					"datastore": schema.StringAttribute{
						MarkdownDescription: "Name of the datastore for the restored disks (modes `new_vm` and " +
							"`disk`). Defaults to where the original VM's disks were (`new_vm`), or to the " +
							"directory of the target VM's first disk (`disk`).",
						Optional:      true,
						Validators:    []validator.String{stringvalidator.LengthAtLeast(1)},
						PlanModifiers: replace,
					},
					"resource_pool": schema.StringAttribute{
						MarkdownDescription: "Inventory path of the resource pool of the new VM, such as " +
							"`/DC0/host/DC0_C0/Resources`.",
						Optional:      true,
						Validators:    []validator.String{vmRestoreCheck("vm.resource_pool", func(v *api.VMRestore, s string) { v.ResourcePool = s })},
						PlanModifiers: replace,
					},
					"host": schema.StringAttribute{
						MarkdownDescription: "Inventory path of the ESXi host of the new VM, such as " +
							"`/DC0/host/DC0_C0/DC0_C0_H0`.",
						Optional:      true,
						Validators:    []validator.String{vmRestoreCheck("vm.host", func(v *api.VMRestore, s string) { v.Host = s })},
						PlanModifiers: replace,
					},
					"folder": schema.StringAttribute{
						MarkdownDescription: "Inventory path of the VM folder of the new VM, such as `/DC0/vm/restored`. " +
							"Its datacenter is the one the VM is restored into.",
						Optional:      true,
						Validators:    []validator.String{vmRestoreCheck("vm.folder", func(v *api.VMRestore, s string) { v.Folder = s })},
						PlanModifiers: replace,
					},
					"network_map": schema.MapAttribute{
						MarkdownDescription: "Networks of the new VM: backed-up network name to target network " +
							"name, such as `{ \"VM Network\" = \"Isolated\" }`. Networks not in the map keep their " +
							"names.",
						ElementType: types.StringType,
						Optional:    true,
						Validators:  []validator.Map{mapvalidator.ValueStringsAre(stringvalidator.LengthAtLeast(1))},
						PlanModifiers: []planmodifier.Map{mapplanmodifier.RequiresReplaceIf(
							func(ctx context.Context, req planmodifier.MapRequest, resp *mapplanmodifier.RequiresReplaceIfFuncResponse) {
								resp.RequiresReplace = !adopting(ctx, req.Private, req.StateValue, &resp.Diagnostics)
							}, descReplaceUnlessAdopting, descReplaceUnlessAdopting)},
					},
					"power_on": schema.BoolAttribute{
						MarkdownDescription: "Power the new VM on once it is built. Defaults to `false`: a restored " +
							"copy that boots next to the original may clash with it on the network.",
						Optional:      true,
						Computed:      true,
						Default:       booldefault.StaticBool(false),
						PlanModifiers: boolReplace,
					},
					"overwrite": schema.BoolAttribute{
						MarkdownDescription: "Must be `true` for mode `original`, as a reminder that the original " +
							"VM's disks are overwritten with the point's. Defaults to `false`.",
						Optional:      true,
						Computed:      true,
						Default:       booldefault.StaticBool(false),
						PlanModifiers: boolReplace,
					},
					"disk_key": schema.Int64Attribute{
						MarkdownDescription: "Device key of the point's disk to restore (mode `disk`, where it is " +
							"required), such as `2000`: the keys the `haven_vm` data source lists for the VM's disks.",
						Optional:   true,
						Validators: []validator.Int64{int64validator.Between(1, 1<<31-1)},
						PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplaceIf(
							func(ctx context.Context, req planmodifier.Int64Request, resp *int64planmodifier.RequiresReplaceIfFuncResponse) {
								resp.RequiresReplace = !adopting(ctx, req.Private, req.StateValue, &resp.Diagnostics)
							}, descReplaceUnlessAdopting, descReplaceUnlessAdopting)},
					},
					"target_instance_uuid": schema.StringAttribute{
						MarkdownDescription: "Instance UUID of the VM that gets the restored disk (mode `disk`, " +
							"where it is required), such as `data.haven_vm.app.instance_uuid`.",
						Optional: true,
						Validators: []validator.String{vmRestoreCheck("vm.target_instance_uuid", func(v *api.VMRestore, s string) {
							v.Mode, v.DiskKey, v.TargetInstanceUUID = api.VMRestoreDisk, 2000, s
						})},
						PlanModifiers: replace,
					},
				},
			},
			"database": schema.SingleNestedBlock{
				MarkdownDescription: "Restores a point of a `haven_database_set`: a database point needs this " +
					"block, and other points must not have it. Without arguments it restores the point over its " +
					"own server's data directory, which takes `overwrite = true`. It rules out `vm`, `target_file_server_id`, " +
					"`target_path`, `paths` and `conflict`. The restore makes a data directory on the host of the " +
					"target database server, whose agent does the work, and leaves the cluster there stopped, " +
					"with its recovery settings: start it and it recovers. Give at most one recovery target " +
					"(`point_in_time`, `restore_point`, `lsn` or `xid`); without one the point itself is restored " +
					"(a full, a differential, or the end of a log point). To restore to an instant, take the " +
					"point from the `haven_recovery_point` data source with `covers_time`. With `verify` it " +
					"checks the point instead, and with `roll_forward` it applies more logs to an earlier " +
					"`standby` or `no_recovery` restore. Changing anything in it runs a new restore.",
				Validators: []validator.Object{objectvalidator.ConflictsWith(noDatabase...)},
				PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplaceIf(
					func(ctx context.Context, req planmodifier.ObjectRequest, resp *objectplanmodifier.RequiresReplaceIfFuncResponse) {
						resp.RequiresReplace = !adopting(ctx, req.Private, req.StateValue, &resp.Diagnostics)
					}, descReplaceUnlessAdopting, descReplaceUnlessAdopting)},
				Attributes: map[string]schema.Attribute{
					"target_database_server_id": schema.StringAttribute{
						MarkdownDescription: "Id of the `haven_database_server` to restore onto; its host's agent " +
							"does the restore. Defaults to the database set's own server.",
						Optional:      true,
						Validators:    []validator.String{objectID("database server", "haven_database_server.orders.id")},
						PlanModifiers: replace,
					},
					"data_dir": schema.StringAttribute{
						MarkdownDescription: "Absolute path of the data directory to make on the target's host, such " +
							"as `/var/lib/postgresql/16/restored`. Defaults to the target server's own data directory " +
							"(its `detected.data_dir`): restoring there replaces the running cluster, which needs " +
							"`overwrite`.",
						Optional:      true,
						Validators:    []validator.String{dbRestoreCheck("database.data_dir", func(d *api.DatabaseRestore, s string) { d.DataDir = s })},
						PlanModifiers: replace,
					},
					"port": schema.Int64Attribute{
						MarkdownDescription: "Port written into the restored cluster's settings, so that it can start " +
							"beside the original. Unset keeps the backed-up setting.",
						Optional:      true,
						Validators:    []validator.Int64{int64validator.Between(1, 65535)},
						PlanModifiers: int64Replace,
					},
					"point_in_time": schema.StringAttribute{
						MarkdownDescription: "Recover to this instant, an RFC 3339 time such as " +
							"`2026-03-01T17:59:00Z`: the point's logs, and those of the log points after it, are " +
							"replayed up to it. The logs must cover it.",
						Optional:      true,
						Validators:    []validator.String{rfc3339Time()},
						PlanModifiers: replace,
					},
					"restore_point": schema.StringAttribute{
						MarkdownDescription: "Recover to this named restore point (made with " +
							"`pg_create_restore_point()`); the `haven_recovery_point` data source lists a log " +
							"point's `database.restore_points`.",
						Optional: true,
						Validators: []validator.String{stringvalidator.LengthAtLeast(1),
							dbRestoreCheck("database.restore_point", func(d *api.DatabaseRestore, s string) { d.RestorePoint = s })},
						PlanModifiers: replace,
					},
					"lsn": schema.StringAttribute{
						MarkdownDescription: "Recover to this write-ahead log location, such as `0/16B3740`.",
						Optional:            true,
						Validators:          []validator.String{dbRestoreCheck("database.lsn", func(d *api.DatabaseRestore, s string) { d.LSN = s })},
						PlanModifiers:       replace,
					},
					"xid": schema.StringAttribute{
						MarkdownDescription: "Recover to the end of this transaction, by its id (a number, such as `7834`).",
						Optional:            true,
						Validators:          []validator.String{dbRestoreCheck("database.xid", func(d *api.DatabaseRestore, s string) { d.XID = s })},
						PlanModifiers:       replace,
					},
					"end_state": schema.StringAttribute{
						MarkdownDescription: "Where the restored cluster's recovery ends once it is started: `recovery` " +
							"(promoted and open for writes), `standby` (a read-only hot standby) or `no_recovery` " +
							"(held in recovery, closed to connections). A `standby` or `no_recovery` restore can " +
							"later be given more logs with `roll_forward`. Defaults to `recovery`.",
						Optional:      true,
						Computed:      true,
						Default:       stringdefault.StaticString(api.EndRecovery),
						Validators:    []validator.String{stringvalidator.OneOf(api.EndRecovery, api.EndStandby, api.EndNoRecovery)},
						PlanModifiers: replace,
					},
					"overwrite": schema.BoolAttribute{
						MarkdownDescription: "Must be `true` to restore over the target server's own data directory " +
							"(the default `data_dir`): its connections are terminated, the cluster is stopped and its " +
							"data replaced, after the agent has backed up the logs Haven does not hold yet (a " +
							"tail-log backup, which a restore to the end or to a target replays too). Defaults to `false`.",
						Optional:      true,
						Computed:      true,
						Default:       booldefault.StaticBool(false),
						PlanModifiers: boolReplace,
					},
					"verify": schema.BoolAttribute{
						MarkdownDescription: "Check the point instead of restoring it: the agent of the target " +
							"server's host restores it into a scratch cluster, starts it, runs `pg_amcheck`, counts " +
							"every table's rows, removes it and records the result on the point (the " +
							"`haven_recovery_point` data source's `database.verified`). No data directory is " +
							"touched, so it takes no `data_dir`, `port`, recovery target, `end_state` or `overwrite`. " +
							"A full or differential point only. Defaults to `false`.",
						Optional:      true,
						Computed:      true,
						Default:       booldefault.StaticBool(false),
						PlanModifiers: boolReplace,
					},
					"roll_forward": schema.BoolAttribute{
						MarkdownDescription: "Apply more logs to an earlier `standby` or `no_recovery` restore in " +
							"`data_dir` (stopped first if it runs) instead of restoring a point: its recovery goes " +
							"on to the recovery target given, or to the end of the set's logs, and ends in " +
							"`end_state` (`recovery` promotes it). It needs `data_dir`, and takes no `overwrite` " +
							"or `port`. Defaults to `false`.",
						Optional:      true,
						Computed:      true,
						Default:       booldefault.StaticBool(false),
						PlanModifiers: boolReplace,
					},
				},
			},
			"nas": schema.SingleNestedBlock{
				MarkdownDescription: "Restores a point of a `haven_nas_share`: a NAS point needs this block, and " +
					"other points must not have it. Without arguments it restores the point's files into the share " +
					"they came from, where they were. `paths` selects what to restore, as for a file point; the " +
					"block rules out `vm`, `database`, `target_file_server_id`, `target_path` and `conflict` " +
					"(`share_id`, `path` and `nas.conflict` take their place). A NAS proxy of the target share's " +
					"device does the work. Changing anything in it runs a new restore.",
				Validators: []validator.Object{objectvalidator.ConflictsWith(noNAS...)},
				PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplaceIf(
					func(ctx context.Context, req planmodifier.ObjectRequest, resp *objectplanmodifier.RequiresReplaceIfFuncResponse) {
						resp.RequiresReplace = !adopting(ctx, req.Private, req.StateValue, &resp.Diagnostics)
					}, descReplaceUnlessAdopting, descReplaceUnlessAdopting)},
				Attributes: map[string]schema.Attribute{
					"share_id": schema.StringAttribute{
						MarkdownDescription: "Id of the `haven_nas_share` to restore into. Defaults to the point's own " +
							"share. The backed-up paths are recreated in its share, below its root (not below its `path`).",
						Optional:      true,
						Validators:    []validator.String{objectID("NAS share", "haven_nas_share.projects.id")},
						PlanModifiers: replace,
					},
					"path": schema.StringAttribute{
						MarkdownDescription: "Directory inside the target share under which the backed-up paths are " +
							"recreated, relative to the share's root with `/` between names (such as `restored/2026-03-01`). " +
							"Unset restores the files where they were.",
						Optional:      true,
						Validators:    []validator.String{nasRestoreCheck("nas.path", func(n *api.NASRestore, s string) { n.Path = s })},
						PlanModifiers: replace,
					},
					"conflict": schema.StringAttribute{
						MarkdownDescription: "What to do with a file that already exists in the share: `overwrite` it, " +
							"`skip` it, or `rename` the restored copy (to `<name>.restored-1`, or the next free " +
							"number), as a file restore's `conflict`. Defaults to `overwrite`.",
						Optional:      true,
						Computed:      true,
						Default:       stringdefault.StaticString("overwrite"),
						Validators:    []validator.String{stringvalidator.OneOf(api.RestoreConflicts...)},
						PlanModifiers: replace,
					},
				},
			},
			"timeouts": timeoutsBlock,
		},
	}
}

// nasRestoreCheck validates one field of the nas block with the server's
// own rules.
func nasRestoreCheck(field string, set func(*api.NASRestore, string)) validator.String {
	return stringCheck{desc: "must be accepted by the server as " + field, check: func(s string) string {
		var n api.NASRestore
		set(&n, s)
		if err := n.Validate(); err != nil && err.Field == field {
			return err.Message
		}
		return ""
	}}
}

// dbRestoreCheck validates one field of the database block with the
// server's own rules, in a request whose other fields are known good.
func dbRestoreCheck(field string, set func(*api.DatabaseRestore, string)) validator.String {
	return stringCheck{desc: "must be accepted by the server as " + field, check: func(s string) string {
		var d api.DatabaseRestore
		set(&d, s)
		if err := d.Validate(); err != nil && err.Field == field {
			return err.Message
		}
		return ""
	}}
}

// vmRestoreCheck validates one field of the vm block with the server's own
// rules, in a request whose other fields are known good.
func vmRestoreCheck(field string, set func(*api.VMRestore, string)) validator.String {
	return stringCheck{desc: "must be accepted by the server as " + field, check: func(s string) string {
		v := api.VMRestore{Mode: api.VMRestoreNew, Name: "plan-check"}
		set(&v, s)
		if err := v.Validate(); err != nil && err.Field == field {
			return err.Message
		}
		return ""
	}}
}

// ValidateConfig checks the vm block as a whole: what each mode requires,
// and no argument that the chosen mode would ignore; and the database
// block's rule of one recovery target at most.
func (r *restoreResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	validateDatabaseRestore(ctx, req, resp)
	var vm types.Object
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("vm"), &vm)...)
	if resp.Diagnostics.HasError() || vm.IsNull() || vm.IsUnknown() {
		return
	}
	args := vm.Attributes()
	mode := api.VMRestoreNew
	switch m := args["mode"].(types.String); {
	case m.IsUnknown():
		return
	case !m.IsNull():
		mode = m.ValueString()
	}
	uses, ok := vmModeArgs[mode]
	if !ok {
		return // the mode's own validator reports it
	}
	at := path.Root("vm").AtName
	for name, v := range args {
		if name == "mode" || name == "vcenter_id" || slices.Contains(uses, name) || !isConfigured(v) {
			continue
		}
		var modes []string
		for _, m := range []string{api.VMRestoreNew, api.VMRestoreOriginal, api.VMRestoreDisk} {
			if slices.Contains(vmModeArgs[m], name) {
				modes = append(modes, m)
			}
		}
		resp.Diagnostics.AddAttributeError(at(name), "Argument not used by this VM restore mode",
			fmt.Sprintf("Attribute vm.%s applies to mode %s only; this restore has mode %s. Remove it, or "+
				"change vm.mode.", name, strings.Join(modes, " and "), mode))
	}
	required := func(name, why string) {
		if v := args[name]; v.IsNull() {
			resp.Diagnostics.AddAttributeError(at(name), "Missing vm."+name, "Attribute vm."+name+" "+why+".")
		}
	}
	switch mode {
	case api.VMRestoreNew:
		required("name", "is required for a restore as a new VM (mode new_vm): the new VM's name")
	case api.VMRestoreOriginal:
		if o := args["overwrite"].(types.Bool); !o.IsUnknown() && !o.ValueBool() {
			resp.Diagnostics.AddAttributeError(at("overwrite"), "Missing vm.overwrite",
				"Attribute vm.overwrite must be true to restore over the original VM (mode original): its "+
					"disks are overwritten with the point's. The VM must also be powered off.")
		}
	case api.VMRestoreDisk:
		required("disk_key", "is required for a single-disk restore (mode disk): the point's disk to restore, such as 2000")
		required("target_instance_uuid", "is required for a single-disk restore (mode disk): the VM that gets the disk")
	}
}

// validateDatabaseRestore applies the server's one-target rule to the
// database block at plan time, on the second target given.
func validateDatabaseRestore(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var database types.Object
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("database"), &database)...)
	if resp.Diagnostics.HasError() || database.IsNull() || database.IsUnknown() {
		return
	}
	args := database.Attributes()
	var given []string
	for _, name := range dbRestoreTargets {
		if v := args[name]; v != nil && !v.IsNull() {
			given = append(given, name)
		}
	}
	if len(given) > 1 {
		resp.Diagnostics.AddAttributeError(path.Root("database").AtName(given[1]), "Conflicting recovery targets",
			fmt.Sprintf("Attribute database.%s cannot be given with database.%s: name at most one of %s.",
				given[1], given[0], strings.Join(dbRestoreTargets, ", ")))
		return
	}
	// What verify and roll_forward rule out, by the server's rules, on a
	// request with stand-ins for the arguments given.
	for _, v := range args {
		if v.IsUnknown() {
			return
		}
	}
	flag := func(name string) bool { b, _ := args[name].(types.Bool); return b.ValueBool() }
	d := api.DatabaseRestore{Overwrite: flag("overwrite"), Verify: flag("verify"), RollForward: flag("roll_forward")}
	if !d.Verify && !d.RollForward {
		return
	}
	if !args["data_dir"].IsNull() {
		d.DataDir = "/plan-check"
	}
	if !args["port"].IsNull() {
		d.Port = 5432
	}
	if len(given) > 0 {
		d.LSN = "0/1"
	}
	if e, ok := args["end_state"].(types.String); ok && !e.IsNull() {
		d.EndState = e.ValueString()
	}
	if err := d.Validate(); err != nil && (err.Field == "database.verify" || err.Field == "database.roll_forward") {
		resp.Diagnostics.AddAttributeError(path.Root("database").AtName(strings.TrimPrefix(err.Field, "database.")),
			"Invalid "+err.Field, fmt.Sprintf("Attribute %s %s.", err.Field, err.Message))
	}
}

// isConfigured reports whether the configuration sets an argument to a
// known value. A false bool counts as unset: it is what the argument
// defaults to anyway.
func isConfigured(v attr.Value) bool {
	if v.IsNull() || v.IsUnknown() {
		return false
	}
	if b, ok := v.(types.Bool); ok {
		return b.ValueBool()
	}
	return true
}

// fileRestoreDefault gives conflict its default for a file restore only: a
// VM or database restore has no files to conflict with, and a value in its
// state would suggest otherwise (and the server refuses a database restore
// that names one).
type fileRestoreDefault struct{ value string }

func (d fileRestoreDefault) Description(context.Context) string {
	return fmt.Sprintf("defaults to %q without a vm, database or nas block, null with one", d.value)
}

func (d fileRestoreDefault) MarkdownDescription(ctx context.Context) string {
	return d.Description(ctx)
}

func (d fileRestoreDefault) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if !req.ConfigValue.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var vm, database, nas types.Object
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("vm"), &vm)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("database"), &database)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("nas"), &nas)...)
	switch {
	case vm.IsUnknown() || database.IsUnknown() || nas.IsUnknown():
	case vm.IsNull() && database.IsNull() && nas.IsNull():
		resp.PlanValue = types.StringValue(d.value)
	default:
		resp.PlanValue = types.StringNull()
	}
}

// descReplaceUnlessAdopting describes the restore arguments' plan modifier.
const descReplaceUnlessAdopting = "Changing it runs a new restore, except on the first plan after an import, " +
	"which adopts the configuration's value."

// adoptedKey marks, in the private state, a restore that was imported and
// has not been through an apply since: the job record has only the point,
// so the configuration's other arguments are taken as they are, once.
const adoptedKey = "adopted_by_import"

// adopting tells a RequiresReplaceIf modifier that a restore argument the
// state does not know (null since the import) is being adopted from the
// configuration rather than changed.
func adopting(ctx context.Context, private interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
}, state attr.Value, diags *diag.Diagnostics) bool {
	if private == nil || !state.IsNull() {
		return false
	}
	v, d := private.GetKey(ctx, adoptedKey)
	diags.Append(d...)
	return len(v) > 0
}

// vmResultPlan plans the restored_vm_* outputs: null for a file restore; for
// a new VM restore, known once the job has run; after that, what the state
// holds, since nothing but a replacement restores again. Unlike
// UseStateForUnknown it also keeps a null, so a file restore whose wait
// changes plans no unknown outputs.
type vmResultPlan struct{}

func (vmResultPlan) Description(context.Context) string {
	return "null for file restores; set by the VM restore that created the resource"
}

func (m vmResultPlan) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (vmResultPlan) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if !req.PlanValue.IsUnknown() || req.Plan.Raw.IsNull() {
		return
	}
	if !req.State.Raw.IsNull() {
		resp.PlanValue = req.StateValue
		return
	}
	var vm types.Object
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("vm"), &vm)...)
	if vm.IsNull() {
		resp.PlanValue = types.StringNull()
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
	if v := m.VM; v != nil {
		req.VM = &api.VMRestore{
			Mode:               v.Mode.ValueString(),
			VCenterID:          v.VCenterID.ValueString(),
			Name:               v.Name.ValueString(),
			Datastore:          v.Datastore.ValueString(),
			ResourcePool:       v.ResourcePool.ValueString(),
			Host:               v.Host.ValueString(),
			Folder:             v.Folder.ValueString(),
			PowerOn:            v.PowerOn.ValueBool(),
			Overwrite:          v.Overwrite.ValueBool(),
			DiskKey:            int32(v.DiskKey.ValueInt64()),
			TargetInstanceUUID: v.TargetInstanceUUID.ValueString(),
		}
		if !v.NetworkMap.IsNull() {
			diags.Append(v.NetworkMap.ElementsAs(ctx, &req.VM.NetworkMap, false)...)
		}
	}
	if d := m.Database; d != nil {
		req.Database = &api.DatabaseRestore{
			TargetDatabaseServerID: d.TargetDatabaseServerID.ValueString(),
			DataDir:                d.DataDir.ValueString(),
			Port:                   int(d.Port.ValueInt64()),
			RestorePoint:           d.RestorePoint.ValueString(),
			LSN:                    d.LSN.ValueString(),
			XID:                    d.XID.ValueString(),
			EndState:               d.EndState.ValueString(),
			Overwrite:              d.Overwrite.ValueBool(),
			Verify:                 d.Verify.ValueBool(),
			RollForward:            d.RollForward.ValueBool(),
		}
		if !d.PointInTime.IsNull() {
			t, err := time.Parse(time.RFC3339, d.PointInTime.ValueString())
			if err != nil {
				diags.AddAttributeError(path.Root("database").AtName("point_in_time"), "Invalid database.point_in_time", err.Error())
			}
			req.Database.PointInTime = &t
		}
	}
	if n := m.NAS; n != nil {
		req.NAS = &api.NASRestore{ShareID: n.ShareID.ValueString(), Path: n.Path.ValueString(), Conflict: n.Conflict.ValueString()}
	}
	return req
}

// fill records the job's state and, for a VM restore, what it made. The
// result stays null until the job has one, and Read fills it in later for
// a restore that was not waited for.
func (m *restoreModel) fill(j *api.Job) {
	m.ID = types.StringValue(j.ID)
	m.State = types.StringValue(j.State)
	m.FilesRestored = types.Int64Value(j.Progress.FilesDone)
	m.BytesRestored = types.Int64Value(j.Progress.BytesDone)
	// Only VM restores have these results (an imported one has no vm
	// block in the state yet).
	result := func(key string) types.String {
		if v, ok := j.Result[key]; ok {
			return types.StringValue(v)
		}
		return types.StringNull()
	}
	m.RestoredVMName = result("vm_name")
	m.RestoredVMInstanceUUID = result("vm_instance_uuid")
	m.RestoredVMMoRef = result("vm_moref")
}

// restoredUnit names what a restore counts in its progress.
func restoredUnit(vm bool) string {
	if vm {
		return "disks"
	}
	return "files"
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
			fmt.Sprintf("Restore job %s is still %s on the Haven server after %s (%d %s, %d bytes restored so far). "+
				"It keeps running: follow it with `haven jobs show %s` or stop it with `haven jobs cancel %s`. "+
				"Raise timeouts.create to wait longer, or set wait = false not to wait.",
				job.ID, plan.State.ValueString(), timeout, plan.FilesRestored.ValueInt64(), restoredUnit(plan.VM != nil),
				plan.BytesRestored.ValueInt64(), job.ID, job.ID))
	case err != nil:
		addAPIError(&resp.Diagnostics, "Could not follow restore job "+job.ID, err, nil)
	case final.State != api.JobSucceeded:
		resp.Diagnostics.AddError(fmt.Sprintf("Restore job %s %s", job.ID, final.State), jobFailure(final, plan.VM != nil))
	}
}

// jobFailure explains a restore job that finished without succeeding.
func jobFailure(j *api.Job, vm bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Restore job %s of recovery point %s ended %s", j.ID, j.PointID, j.State)
	if j.Error != "" {
		fmt.Fprintf(&b, ": %s", j.Error)
	}
	fmt.Fprintf(&b, ".\n%d %s and %d bytes were restored.", j.Progress.FilesDone, restoredUnit(vm), j.Progress.BytesDone)
	if len(j.Warnings) > 0 {
		b.WriteString("\n\nWarnings:")
		for _, w := range j.Warnings[:min(len(j.Warnings), maxWarningsShown)] {
			b.WriteString("\n  - " + w)
		}
		if n := len(j.Warnings) - maxWarningsShown; n > 0 {
			fmt.Fprintf(&b, "\n  ... and %d more: `haven jobs show %s` lists them all.", n, j.ID)
		}
	}
	if vm {
		b.WriteString("\n\nThe next apply restores again.")
	} else {
		b.WriteString("\n\nRestored files are left in place. The next apply restores again.")
	}
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
	if j.Kind != api.JobRestore {
		resp.Diagnostics.AddError("Job "+j.ID+" is not a restore",
			fmt.Sprintf("Job %s is a %s job; haven_restore can only import restore jobs (`haven jobs list` shows each job's kind).", j.ID, j.Kind))
		return
	}
	// After an import the state has only the id: the job names the point,
	// and wait takes its default. Otherwise the point is the one the
	// restore was created with: a database restore's job ends naming the
	// full or differential it started from, not the log point asked for.
	if state.PointID.IsNull() {
		state.PointID = types.StringValue(j.PointID)
	}
	if state.Wait.IsNull() {
		state.Wait = types.BoolValue(true)
	}
	state.fill(j)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update only records new values of wait and timeouts, the arguments that
// do not replace the resource; nothing is sent to the server.
func (r *restoreResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	recordUpdate(ctx, req, resp, func(plan, state *restoreModel) {
		plan.ID, plan.State, plan.FilesRestored, plan.BytesRestored = state.ID, state.State, state.FilesRestored, state.BytesRestored
		plan.RestoredVMName, plan.RestoredVMInstanceUUID, plan.RestoredVMMoRef = state.RestoredVMName, state.RestoredVMInstanceUUID, state.RestoredVMMoRef
	})
}

// ImportState takes the id of a restore job, such as `haven restore` prints.
// Read checks that it is one and fills in its point, state and results.
func (r *restoreResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !uuidShaped.MatchString(req.ID) {
		resp.Diagnostics.AddError("Invalid restore job id",
			fmt.Sprintf("haven_restore is imported by the id of its restore job, as `haven restore` prints it "+
				"and `haven jobs list` shows it, got %q.", req.ID))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), strings.ToLower(req.ID))...)
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, adoptedKey, []byte("true"))...)
}

// Delete forgets the restore. Restored files and VMs are the user's now,
// and a job still running is left alone: canceling it halfway would leave
// a partly restored tree or VM that nobody asked for. The job is only
// looked at to say so; failing to look must not stop Terraform from
// forgetting it.
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
				"restoring %s. Stop it with `haven jobs cancel %s` if it is no longer wanted.", j.ID, j.State,
				restoredUnit(state.VM != nil), j.ID))
	}
}
