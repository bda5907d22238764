package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ datasource.DataSource                     = (*fileServerDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*fileServerDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*fileServerDataSource)(nil)
)

// NewFileServerDataSource is the haven_file_server data source, which looks
// up a file server registered elsewhere so filesets can refer to it.
func NewFileServerDataSource() datasource.DataSource {
	return &fileServerDataSource{}
}

type fileServerDataSource struct {
	namedObjectSource
}

type fileServerDataSourceModel struct {
	ID            types.String `tfsdk:"id"`
	Version       types.Int64  `tfsdk:"version"`
	Name          types.String `tfsdk:"name"`
	Hostname      types.String `tfsdk:"hostname"`
	OS            types.String `tfsdk:"os"`
	Location      types.String `tfsdk:"location"`
	Group         types.String `tfsdk:"group"`
	RestoreRoots  types.List   `tfsdk:"restore_roots"`
	AgentStatus   types.String `tfsdk:"agent_status"`
	AgentLastSeen types.String `tfsdk:"agent_last_seen"`
}

func (d *fileServerDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_file_server"
}

func (d *fileServerDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a Haven file server by `id` or by `name`. The activation token of an " +
			"agent file server is not available here: the `haven_file_server_activation` ephemeral resource " +
			"issues one.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the file server. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the file server. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the file server on the server; it increases by one on every change.",
				Computed:            true,
			},
			"hostname": computed("Host name or address of the file server."),
			"os":       computed(descFileServerOS),
			"location": computed(descFileServerLocation),
			"group":    computed(descFileServerGroup),
			"restore_roots": schema.ListAttribute{MarkdownDescription: descRestoreRoots, ElementType: types.StringType,
				Computed: true},
			"agent_status": computed(descAgentStatus),
			"agent_last_seen": computed("When the agent of an `agent` file server last called the server, " +
				"as an RFC 3339 timestamp; null if it never has."),
		},
	}
}

func (d *fileServerDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "file server", d.client.FileServers(), func(m *fileServerDataSourceModel) (types.String, types.String) { return m.ID, m.Name },
		func(f *api.FileServer) (string, string) { return f.ID, f.Name },
		func(f *api.FileServer) (fileServerDataSourceModel, diag.Diagnostics) {
			state := fileServerDataSourceModel{
				ID:            types.StringValue(f.ID),
				Version:       types.Int64Value(f.Version),
				Name:          types.StringValue(f.Name),
				Hostname:      types.StringValue(f.Hostname),
				OS:            types.StringValue(f.OS),
				Location:      types.StringValue(f.Location),
				Group:         optString(f.Group),
				RestoreRoots:  stringList(f.RestoreRoots),
				AgentStatus:   optString(f.AgentStatus),
				AgentLastSeen: types.StringNull(),
			}
			if f.AgentLastSeen != nil {
				state.AgentLastSeen = types.StringValue(f.AgentLastSeen.UTC().Format(time.RFC3339))
			}
			return state, nil
		})
}
