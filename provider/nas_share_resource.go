package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                   = (*nasShareResource)(nil)
	_ resource.ResourceWithConfigure      = (*nasShareResource)(nil)
	_ resource.ResourceWithImportState    = (*nasShareResource)(nil)
	_ resource.ResourceWithValidateConfig = (*nasShareResource)(nil)
)

// NewNASShareResource is the haven_nas_share resource: a share of a NAS
// device, what of it is backed up, under which policy, into which
// storage.
func NewNASShareResource() resource.Resource {
	return &nasShareResource{}
}

type nasShareResource struct {
	client *api.Client
}

// nasShareModel is shared by the resource and the data source, whose
// schemas have the same attribute names and types.
type nasShareModel struct {
	ID          types.String `tfsdk:"id"`
	Version     types.Int64  `tfsdk:"version"`
	Name        types.String `tfsdk:"name"`
	NASDeviceID types.String `tfsdk:"nas_device_id"`
	Protocol    types.String `tfsdk:"protocol"`
	Share       types.String `tfsdk:"share"`
	Path        types.String `tfsdk:"path"`
	Include     types.List   `tfsdk:"include"`
	Exclude     types.List   `tfsdk:"exclude"`
	PolicyID    types.String `tfsdk:"policy_id"`
	StorageID   types.String `tfsdk:"storage_id"`
	Group       types.String `tfsdk:"group"`
}

// Descriptions shared by the resource and data source schemas.
const (
	descNASShareProtocol = "Protocol the share is read and restored over: `smb` or `nfs`, one of the device's `protocols`."
	descNASShareShare    = "The share: an SMB share's name (such as `projects`, without slashes), or an NFS export's " +
		"absolute path (such as `/export/projects`)."
	descNASSharePath = "Directory inside the share to protect, relative to the share's root with `/` between names " +
		"(such as `departments/finance`)."
	descNASShareGlobs = "matched against each entry's path and its name (for example `*.tmp`, `~$*` or " +
		"`**/cache`): Go's `path.Match` syntax plus `**` for any number of directories and `{a,b}` alternatives, " +
		"as in a `haven_fileset`'s `exclude_globs`."
	descNASShareGroup = "Administrative group of the NAS share: its NAS device's `group`, which it follows when the " +
		"device's changes. `group_admin` tokens of that group may manage the share and run its backups and restores."
)

func (r *nasShareResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_nas_share"
}

func (r *nasShareResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	emptyList := listdefault.StaticValue(types.ListValueMust(types.StringType, []attr.Value{}))
	resp.Schema = schema.Schema{
		MarkdownDescription: "A NAS share protects a share (SMB) or export (NFS) of a `haven_nas_device`, or a " +
			"directory inside it: what to back up, the `haven_backup_policy` that says when backups run and how " +
			"long they are kept, and the `haven_storage` that holds them. Each backup makes a recovery point " +
			"that `haven_restore` can restore with a `nas` block. Destroying a NAS share stops its backups; " +
			"its recovery points stay restorable until the retention of the policy it was under expires them.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the NAS share; recovery points and jobs name it as their asset.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write: no UseStateForUnknown.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the NAS share on the server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the NAS share: letters, digits, `.`, `_` and `-`, "+
					"starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"nas_device_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_nas_device` that serves the share. While a NAS share refers " +
					"to it, the server refuses to delete the device.",
				Required:   true,
				Validators: []validator.String{objectID("NAS device", "haven_nas_device.filer.id")},
			},
			"protocol": schema.StringAttribute{
				MarkdownDescription: descNASShareProtocol,
				Required:            true,
				Validators:          []validator.String{stringvalidator.OneOf(api.ProtocolSMB, api.ProtocolNFS)},
			},
			"share": schema.StringAttribute{
				MarkdownDescription: descNASShareShare,
				Required:            true,
			},
			"path": schema.StringAttribute{
				MarkdownDescription: descNASSharePath + " Unset protects the whole share.",
				Optional:            true,
				Validators:          []validator.String{sharePath()},
			},
			"include": schema.ListAttribute{
				MarkdownDescription: "Back up only what matches one of these glob patterns, or lies below a directory " +
					"that does, " + descNASShareGlobs + " Defaults to none: everything.",
				ElementType: types.StringType,
				Optional:    true,
				// The server does not tell an empty list from no list, so
				// both are planned as the empty list it reads back.
				Computed:   true,
				Default:    emptyList,
				Validators: []validator.List{listvalidator.ValueStringsAre(excludeGlob())},
			},
			"exclude": schema.ListAttribute{
				MarkdownDescription: "Leave out what matches one of these glob patterns, and everything below a " +
					"directory that does, " + descNASShareGlobs + " Defaults to none.",
				ElementType: types.StringType,
				Optional:    true,
				Computed:    true,
				Default:     emptyList,
				Validators:  []validator.List{listvalidator.ValueStringsAre(excludeGlob())},
			},
			"policy_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_backup_policy` that schedules and retains the backups.",
				Required:            true,
				Validators:          []validator.String{objectID("backup policy", "haven_backup_policy.gold.id")},
			},
			"storage_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_storage` that holds the recovery points. While a NAS share " +
					"refers to it, the server refuses to delete the storage.",
				Required:   true,
				Validators: []validator.String{objectID("storage", "haven_storage.local.id")},
			},
			// The device's group may change in the same apply as the
			// share: no UseStateForUnknown.
			"group": schema.StringAttribute{
				MarkdownDescription: descNASShareGroup + " Null when the device has none.",
				Computed:            true,
			},
		},
	}
}

// sharePath is a directory inside a share, as the server takes it.
func sharePath() validator.String {
	return stringCheck{desc: "must be a directory inside the share, relative to its root", check: func(s string) string {
		spec := api.NASShareSpec{Name: "plan-check", NASDeviceID: "d", Protocol: api.ProtocolSMB, Share: "s", PolicyID: "p", StorageID: "s", Path: s}
		if err := spec.Validate(); err != nil && err.Field == "path" {
			return err.Message
		}
		return ""
	}}
}

func (r *nasShareResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig checks share against the protocol: an SMB share's name or
// an NFS export's path.
func (r *nasShareResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var protocol, share types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("protocol"), &protocol)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("share"), &share)...)
	if resp.Diagnostics.HasError() || protocol.IsNull() || protocol.IsUnknown() || share.IsNull() || share.IsUnknown() {
		return
	}
	if problem := api.ShareNameProblem(protocol.ValueString(), share.ValueString()); problem != "" {
		resp.Diagnostics.AddAttributeError(path.Root("share"), "Invalid share", "Attribute share "+problem+".")
	}
}

func (m *nasShareModel) spec(ctx context.Context, diags *diag.Diagnostics) api.NASShareSpec {
	s := api.NASShareSpec{
		Name:        m.Name.ValueString(),
		NASDeviceID: m.NASDeviceID.ValueString(),
		Protocol:    m.Protocol.ValueString(),
		Share:       m.Share.ValueString(),
		Path:        m.Path.ValueString(),
		PolicyID:    m.PolicyID.ValueString(),
		StorageID:   m.StorageID.ValueString(),
	}
	diags.Append(m.Include.ElementsAs(ctx, &s.Include, false)...)
	diags.Append(m.Exclude.ElementsAs(ctx, &s.Exclude, false)...)
	return s
}

func (m *nasShareModel) fill(s *api.NASShare) {
	m.ID = types.StringValue(s.ID)
	m.Version = types.Int64Value(s.Version)
	m.Name = types.StringValue(s.Name)
	m.NASDeviceID = types.StringValue(s.NASDeviceID)
	m.Protocol = types.StringValue(s.Protocol)
	m.Share = types.StringValue(s.Share)
	m.Path = optString(s.Path)
	m.Include = stringList(s.Include)
	m.Exclude = stringList(s.Exclude)
	m.PolicyID = types.StringValue(s.PolicyID)
	m.StorageID = types.StringValue(s.StorageID)
	m.Group = optString(s.Group)
}

func (r *nasShareResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan nasShareModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	s, err := r.client.NASShares().Create(ctx, api.NASShareRequest{NASShareSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create NAS share "+spec.Name, &plan, s, err,
		fillOnly((*nasShareModel).fill))
}

func (r *nasShareResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "NAS share", func(m *nasShareModel) string { return m.ID.ValueString() },
		r.client.NASShares().Get, fillOnly((*nasShareModel).fill))
}

func (r *nasShareResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state nasShareModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	s, err := r.client.NASShares().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.NASShareRequest{NASShareSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update NAS share "+spec.Name, &plan, s, err,
		fillOnly((*nasShareModel).fill))
}

func (r *nasShareResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "NAS share", func(m *nasShareModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.NASShares().Delete)
}

// ImportState takes an id or a name: the server's Get accepts both, and Read
// replaces the name with the real id.
func (r *nasShareResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
