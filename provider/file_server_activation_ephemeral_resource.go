package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ ephemeral.EphemeralResource              = (*fileServerActivation)(nil)
	_ ephemeral.EphemeralResourceWithConfigure = (*fileServerActivation)(nil)
)

// NewFileServerActivation is the haven_file_server_activation ephemeral
// resource: a one-time activation token for the agent of a file server,
// issued when Terraform needs it and never stored in the plan or state.
func NewFileServerActivation() ephemeral.EphemeralResource {
	return &fileServerActivation{}
}

type fileServerActivation struct {
	client *api.Client
}

type fileServerActivationModel struct {
	FileServerID    types.String `tfsdk:"file_server_id"`
	Reenrol         types.Bool   `tfsdk:"reenrol"`
	ActivationToken types.String `tfsdk:"activation_token"`
	AgentStatus     types.String `tfsdk:"agent_status"`
}

func (e *fileServerActivation) Metadata(_ context.Context, req ephemeral.MetadataRequest, resp *ephemeral.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_file_server_activation"
}

func (e *fileServerActivation) Schema(_ context.Context, _ ephemeral.SchemaRequest, resp *ephemeral.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Issues a one-time activation token for the agent of a `haven_file_server` of " +
			"`location = \"agent\"`, for `haven agent --activation-token`. It is ephemeral (Terraform 1.10 or " +
			"later): the token is never written to the plan or the state, so it can only be passed to what takes " +
			"ephemeral values, such as a provisioner or connection block, a write-only argument, an ephemeral " +
			"variable or output of a module, or a provider configuration.\n\n" +
			"Terraform opens it on every plan and apply that reads it. While the token is unused and unexpired " +
			"(24 hours after the server issued it), every run gets the same token, so a later `terraform plan` " +
			"does not make stale a token an apply handed to a host, and a retried request leaves one valid " +
			"token. Once it has expired, the next run gets a new one, which replaces it. Once an agent has " +
			"activated, no token is issued (`activation_token` is null) unless `reenrol` is set, so a valid " +
			"token is not left lying around. See the file servers guide.",
		Attributes: map[string]schema.Attribute{
			"file_server_id": schema.StringAttribute{
				MarkdownDescription: "Id (or name) of the `haven_file_server`, which must be of `location = \"agent\"`.",
				Required:            true,
				Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"reenrol": schema.BoolAttribute{
				MarkdownDescription: "Issue a token even though an agent has already activated, to enrol the host " +
					"again (rebuilt, or its `--state-dir` lost). The running agent keeps working until an agent " +
					"activates with the new token; then its credential is revoked, and the next run gets null again " +
					"unless `reenrol` is still set. Defaults to `false`.",
				Optional: true,
			},
			"activation_token": schema.StringAttribute{
				MarkdownDescription: "The one-time activation token, the same on every run until it is used or " +
					"expires; null when an agent has already activated and `reenrol` is not set.",
				Computed:  true,
				Sensitive: true,
			},
			"agent_status": schema.StringAttribute{
				MarkdownDescription: descAgentStatus,
				Computed:            true,
			},
		},
	}
}

func (e *fileServerActivation) Configure(_ context.Context, req ephemeral.ConfigureRequest, resp *ephemeral.ConfigureResponse) {
	e.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (e *fileServerActivation) Open(ctx context.Context, req ephemeral.OpenRequest, resp *ephemeral.OpenResponse) {
	var m fileServerActivationModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := m.FileServerID.ValueString()
	f, err := e.client.FileServers().Get(ctx, id)
	if api.IsNotFound(err) {
		resp.Diagnostics.AddAttributeError(path.Root("file_server_id"), "No such file server",
			fmt.Sprintf("The Haven server has no file server %q.", id))
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Could not read file server "+id, err, nil)
		return
	}
	if f.Location != api.LocationAgent {
		resp.Diagnostics.AddAttributeError(path.Root("file_server_id"), "File server has no agent",
			fmt.Sprintf("File server %s is of location %q: its files are read by the Haven server itself, "+
				"so there is no agent to activate.", f.Name, f.Location))
		return
	}
	m.AgentStatus = types.StringValue(f.AgentStatus)
	m.ActivationToken = types.StringNull()
	if f.AgentStatus == "pending" || m.Reenrol.ValueBool() {
		a, err := e.client.IssueActivation(ctx, f.ID, false)
		if err != nil {
			addAPIError(&resp.Diagnostics, "Could not issue an activation token for file server "+f.Name, err, nil)
			return
		}
		m.ActivationToken = types.StringValue(a.ActivationToken)
	}
	resp.Diagnostics.Append(resp.Result.Set(ctx, &m)...)
}
