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
	_ resource.Resource                = (*fileServerResource)(nil)
	_ resource.ResourceWithConfigure   = (*fileServerResource)(nil)
	_ resource.ResourceWithImportState = (*fileServerResource)(nil)
)

// NewFileServerResource is the haven_file_server resource: a host whose
// files Haven backs up, either the Haven server host itself or a host that
// runs the haven agent.
func NewFileServerResource() resource.Resource {
	return &fileServerResource{}
}

type fileServerResource struct {
	client *api.Client
}

type fileServerResourceModel struct {
	ID           types.String `tfsdk:"id"`
	Version      types.Int64  `tfsdk:"version"`
	Name         types.String `tfsdk:"name"`
	Hostname     types.String `tfsdk:"hostname"`
	OS           types.String `tfsdk:"os"`
	Location     types.String `tfsdk:"location"`
	Group        types.String `tfsdk:"group"`
	RestoreRoots types.List   `tfsdk:"restore_roots"`
	AgentStatus  types.String `tfsdk:"agent_status"`
}

// Descriptions shared by the resource and data source schemas.
const (
	descFileServerOS       = "Operating system family of the host: `linux` or `windows`."
	descFileServerLocation = "Where the host's files are read: `server` means the Haven server host itself " +
		"(no agent needed, for example a NAS share mounted on it), `agent` means a host that runs " +
		"`haven agent`, which dials out to the server."
	descFileServerGroup = "Administrative group of the file server: `group_admin` tokens of that group may " +
		"keep filesets on it and restore onto it; no other group admin may."
	descRestoreRoots = "Absolute directories of the host that restores may write under, besides the include " +
		"paths of its filesets (a restore to an original location stays within those). The Haven server " +
		"refuses any other `target_path`. On an `agent` host, `haven agent --restore-roots` must allow them " +
		"too: the agent checks every path it writes against its own list. On the Haven host " +
		"(`location = \"server\"`), `haven server --local-roots` bounds them."
	descAgentStatus = "State of the agent of an `agent` file server: `pending` until an agent has activated " +
		"with an activation token (see `haven_file_server_activation`), then `online` or `offline` (silent for more than 90 seconds). " +
		"Null for `server` file servers."
)

func (r *fileServerResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_file_server"
}

func (r *fileServerResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A file server is a host whose files Haven backs up with `haven_fileset`. It is " +
			"either the Haven server host itself (`location = \"server\"`) or a host that runs the haven agent " +
			"(`location = \"agent\"`). The agent activates with a one-time token from the " +
			"`haven_file_server_activation` ephemeral resource, which Terraform never stores in the plan or " +
			"state, and trades it for its own credential.\n\n" +
			"Versions of the provider before the ephemeral resource kept the token from the server's answer to " +
			"the create in an `activation_token` attribute of this resource. That attribute is gone: the next " +
			"plan or refresh drops it from existing state, and nothing is replaced.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the file server.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write: no UseStateForUnknown.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the file server on the server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the file server: letters, digits, `.`, `_` and `-`, "+
					"starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"hostname": schema.StringAttribute{
				MarkdownDescription: "Host name or address of the file server (1 to 253 characters, no spaces or " +
					"slashes). Can be changed in place.",
				Required:   true,
				Validators: []validator.String{hostname()},
			},
			"os": schema.StringAttribute{
				MarkdownDescription: descFileServerOS + " Recovery points can only be restored to a file server " +
					"of the same family.",
				Required:   true,
				Validators: []validator.String{stringvalidator.OneOf(api.OSLinux, api.OSWindows)},
			},
			"location": schema.StringAttribute{
				MarkdownDescription: descFileServerLocation + " Changing it replaces the file server: the server " +
					"refuses to move a file server between locations.",
				Required:   true,
				Validators: []validator.String{stringvalidator.OneOf(api.LocationServer, api.LocationAgent)},
				// The server answers 422 to a change of location.
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"group": schema.StringAttribute{
				MarkdownDescription: descFileServerGroup + " Unset means only `admin` and `operator` tokens may.",
				Optional:            true,
				Validators:          objectName(),
			},
			"restore_roots": schema.ListAttribute{
				MarkdownDescription: descRestoreRoots + " Defaults to none.",
				ElementType:         types.StringType,
				Optional:            true,
				// The server does not tell an empty list from no list.
				Computed:   true,
				Default:    listdefault.StaticValue(types.ListValueMust(types.StringType, []attr.Value{})),
				Validators: []validator.List{listvalidator.UniqueValues(), listvalidator.ValueStringsAre(includePath())},
			},
			"agent_status": schema.StringAttribute{
				MarkdownDescription: descAgentStatus,
				Computed:            true,
				PlanModifiers:       []planmodifier.String{agentOnly{}},
			},
		},
	}
}

func (r *fileServerResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (m *fileServerResourceModel) spec(ctx context.Context, diags *diag.Diagnostics) api.FileServerSpec {
	s := api.FileServerSpec{
		Name:     m.Name.ValueString(),
		Hostname: m.Hostname.ValueString(),
		OS:       m.OS.ValueString(),
		Location: m.Location.ValueString(),
		Group:    m.Group.ValueString(),
	}
	if !m.RestoreRoots.IsNull() && !m.RestoreRoots.IsUnknown() {
		diags.Append(m.RestoreRoots.ElementsAs(ctx, &s.RestoreRoots, false)...)
	}
	return s
}

// fill copies what the server holds into the model. The activation token
// the server returns in the answer to the create is not kept: it would sit
// in the state (haven_file_server_activation issues one instead).
func (m *fileServerResourceModel) fill(f *api.FileServer) {
	m.ID = types.StringValue(f.ID)
	m.Version = types.Int64Value(f.Version)
	m.Name = types.StringValue(f.Name)
	m.Hostname = types.StringValue(f.Hostname)
	m.OS = types.StringValue(f.OS)
	m.Location = types.StringValue(f.Location)
	m.Group = optString(f.Group)
	m.RestoreRoots = stringList(f.RestoreRoots)
	m.AgentStatus = optString(f.AgentStatus)
}

func (r *fileServerResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan fileServerResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	f, err := r.client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create file server "+spec.Name, &plan, f, err,
		fillOnly((*fileServerResourceModel).fill))
}

func (r *fileServerResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "file server", func(m *fileServerResourceModel) string { return m.ID.ValueString() }, r.client.FileServers().Get,
		fillOnly((*fileServerResourceModel).fill))
}

func (r *fileServerResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state fileServerResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	f, err := r.client.FileServers().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.FileServerRequest{FileServerSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update file server "+spec.Name, &plan, f, err,
		fillOnly((*fileServerResourceModel).fill))
}

func (r *fileServerResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "file server", func(m *fileServerResourceModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.FileServers().Delete)
}

// ImportState takes an id or a name.
func (r *fileServerResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// agentOnly plans the attributes that only agent file servers have. For a
// file server on the Haven server host they are known to be null, so the
// plan shows no "known after apply".
type agentOnly struct{}

func (m agentOnly) Description(context.Context) string {
	return "null for server file servers"
}

func (m agentOnly) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (m agentOnly) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var location types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("location"), &location)...)
	if !location.IsUnknown() && location.ValueString() == api.LocationServer {
		resp.PlanValue = types.StringNull()
	}
}
