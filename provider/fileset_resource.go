package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
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
	_ resource.Resource                = (*filesetResource)(nil)
	_ resource.ResourceWithConfigure   = (*filesetResource)(nil)
	_ resource.ResourceWithImportState = (*filesetResource)(nil)
)

// NewFilesetResource is the haven_fileset resource: which paths of a file
// server are backed up, under which policy, into which storage.
func NewFilesetResource() resource.Resource {
	return &filesetResource{}
}

type filesetResource struct {
	client *api.Client
}

// filesetModel is shared by the resource and the data source, whose
// schemas have the same attribute names and types.
type filesetModel struct {
	ID           types.String `tfsdk:"id"`
	Version      types.Int64  `tfsdk:"version"`
	Name         types.String `tfsdk:"name"`
	FileServerID types.String `tfsdk:"file_server_id"`
	IncludePaths types.List   `tfsdk:"include_paths"`
	ExcludeGlobs types.List   `tfsdk:"exclude_globs"`
	PolicyID     types.String `tfsdk:"policy_id"`
	StorageID    types.String `tfsdk:"storage_id"`
	Group        types.String `tfsdk:"group"`
}

// Descriptions shared by the resource and data source schemas.
const (
	descIncludePaths = "Absolute paths on the file server to back up, directories or single files, such as " +
		"`/srv/share` or `D:\\Shares` on Windows. Everything below a directory is included, and the " +
		"directories above each path are recorded so a restore recreates them."
	descExcludeGlobs = "Glob patterns of files and directories to leave out, matched against each absolute path and " +
		"each name (for example `*.tmp`, `.cache` or `/srv/**/build`): Go's `path.Match` syntax plus `**` for any " +
		"number of directories and `{a,b}` alternatives."
	descGroup = "Administrative group of the fileset: `group_admin` tokens of that group may manage it and " +
		"run its backups and restores."
)

func (r *filesetResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_fileset"
}

func (r *filesetResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A fileset protects files of a `haven_file_server`: the paths to back up, what " +
			"to leave out, the `haven_backup_policy` that says when backups run and how long they are kept, " +
			"and the `haven_storage` that holds the data. The server schedules the backups; each one makes " +
			"a recovery point that `haven_restore` can restore. Destroying a fileset stops its backups; its " +
			"recovery points stay listed under its name and restorable (to any file server with the same OS) " +
			"until the retention of the policy it was under expires them, even if that policy or the file " +
			"server is destroyed too.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the fileset; recovery points and jobs name it as their asset.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write: no UseStateForUnknown.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the fileset on the server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the fileset: letters, digits, `.`, `_` and `-`, "+
					"starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"file_server_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_file_server` whose files are backed up.",
				Required:            true,
				Validators:          []validator.String{objectID("file server", "haven_file_server.nas.id")},
			},
			"include_paths": schema.ListAttribute{
				MarkdownDescription: descIncludePaths + " At least one; POSIX paths must be clean " +
					"(no `//`, `.`, `..` or trailing `/`).",
				ElementType: types.StringType,
				Required:    true,
				Validators: []validator.List{
					listvalidator.SizeAtLeast(1),
					listvalidator.UniqueValues(),
					listvalidator.ValueStringsAre(includePath()),
				},
			},
			"exclude_globs": schema.ListAttribute{
				MarkdownDescription: descExcludeGlobs + " Defaults to none.",
				ElementType:         types.StringType,
				Optional:            true,
				// The server does not tell an empty list from no list, so
				// both are planned as the empty list it reads back.
				Computed:   true,
				Default:    listdefault.StaticValue(types.ListValueMust(types.StringType, []attr.Value{})),
				Validators: []validator.List{listvalidator.ValueStringsAre(excludeGlob())},
			},
			"policy_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_backup_policy` that schedules and retains the backups.",
				Required:            true,
				Validators:          []validator.String{objectID("backup policy", "haven_backup_policy.gold.id")},
			},
			"storage_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_storage` that holds the recovery points. While a fileset " +
					"refers to it, the server refuses to delete the storage.",
				Required:   true,
				Validators: []validator.String{objectID("storage", "haven_storage.local.id")},
			},
			"group": schema.StringAttribute{
				MarkdownDescription: descGroup + " Unset means only `admin` and `operator` tokens may.",
				Optional:            true,
				Validators:          objectName(),
			},
		},
	}
}

func (r *filesetResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (m *filesetModel) spec(ctx context.Context, diags *diag.Diagnostics) api.FilesetSpec {
	s := api.FilesetSpec{
		Name:         m.Name.ValueString(),
		FileServerID: m.FileServerID.ValueString(),
		PolicyID:     m.PolicyID.ValueString(),
		StorageID:    m.StorageID.ValueString(),
		Group:        m.Group.ValueString(),
	}
	diags.Append(m.IncludePaths.ElementsAs(ctx, &s.IncludePaths, false)...)
	if !m.ExcludeGlobs.IsNull() {
		diags.Append(m.ExcludeGlobs.ElementsAs(ctx, &s.ExcludeGlobs, false)...)
	}
	return s
}

func (m *filesetModel) fill(f *api.Fileset) {
	m.ID = types.StringValue(f.ID)
	m.Version = types.Int64Value(f.Version)
	m.Name = types.StringValue(f.Name)
	m.FileServerID = types.StringValue(f.FileServerID)
	m.IncludePaths = stringList(f.IncludePaths)
	m.ExcludeGlobs = stringList(f.ExcludeGlobs)
	m.PolicyID = types.StringValue(f.PolicyID)
	m.StorageID = types.StringValue(f.StorageID)
	m.Group = optString(f.Group)
}

// stringList turns nil into an empty list rather than null, as the server
// omits empty lists from its answers.
func stringList(items []string) types.List {
	elems := make([]attr.Value, len(items))
	for i, s := range items {
		elems[i] = types.StringValue(s)
	}
	return types.ListValueMust(types.StringType, elems)
}

func (r *filesetResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan filesetModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	f, err := r.client.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create fileset "+spec.Name, &plan, f, err,
		fillOnly((*filesetModel).fill))
}

func (r *filesetResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "fileset", func(m *filesetModel) string { return m.ID.ValueString() }, r.client.Filesets().Get,
		fillOnly((*filesetModel).fill))
}

func (r *filesetResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state filesetModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	f, err := r.client.Filesets().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.FilesetRequest{FilesetSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update fileset "+spec.Name, &plan, f, err,
		fillOnly((*filesetModel).fill))
}

func (r *filesetResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "fileset", func(m *filesetModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.Filesets().Delete)
}

// ImportState takes an id or a name: the server's Get accepts both, and Read
// replaces the name with the real id.
func (r *filesetResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
