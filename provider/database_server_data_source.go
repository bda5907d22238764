package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ datasource.DataSource                     = (*databaseServerDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*databaseServerDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*databaseServerDataSource)(nil)
)

// NewDatabaseServerDataSource is the haven_database_server data source,
// which looks up a database server declared elsewhere, so that database
// sets and restores can refer to it.
func NewDatabaseServerDataSource() datasource.DataSource {
	return &databaseServerDataSource{}
}

type databaseServerDataSource struct {
	namedObjectSource
}

type databaseServerDataSourceModel struct {
	ID           types.String `tfsdk:"id"`
	Version      types.Int64  `tfsdk:"version"`
	Name         types.String `tfsdk:"name"`
	FileServerID types.String `tfsdk:"file_server_id"`
	Engine       types.String `tfsdk:"engine"`
	Host         types.String `tfsdk:"host"`
	Port         types.Int64  `tfsdk:"port"`
	User         types.String `tfsdk:"user"`
	Database     types.String `tfsdk:"database"`
	Group        types.String `tfsdk:"group"`
	HasPassword  types.Bool   `tfsdk:"has_password"`
	Detected     types.Object `tfsdk:"detected"`
}

func (d *databaseServerDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_database_server"
}

func (d *databaseServerDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a database server declared in Haven by `id` or by `name`. The password is " +
			"never exposed; `has_password` says whether the server holds one.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the database server. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the database server in Haven. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the database server on the Haven server; it increases by one on every change.",
				Computed:            true,
			},
			"file_server_id": computed("Id of the file server (location `agent`) of the database's host."),
			"engine":         computed("Database engine: `postgresql`."),
			"host":           computed(descDatabaseServerHost),
			"port": schema.Int64Attribute{
				MarkdownDescription: "Port of the server; null when it is PostgreSQL's default, 5432.",
				Computed:            true,
			},
			"user":     computed("Role the agent connects as."),
			"database": computed("Database the agent connects to."),
			"group":    computed(descDatabaseServerGroup + " Null when the database server has none."),
			"has_password": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a password for this database server.",
				Computed:            true,
			},
			"detected": schema.SingleNestedAttribute{
				MarkdownDescription: descDatabaseServerDetected,
				Computed:            true,
				Attributes:          computedAttributes(detectedAttrTypes, detectedDescs, nil),
			},
		},
	}
}

func (d *databaseServerDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "database server", d.client.DatabaseServers(),
		func(m *databaseServerDataSourceModel) (types.String, types.String) { return m.ID, m.Name },
		func(s *api.DatabaseServer) (string, string) { return s.ID, s.Name },
		func(s *api.DatabaseServer) (databaseServerDataSourceModel, diag.Diagnostics) {
			return databaseServerDataSourceModel{
				ID:           types.StringValue(s.ID),
				Version:      types.Int64Value(s.Version),
				Name:         types.StringValue(s.Name),
				FileServerID: types.StringValue(s.FileServerID),
				Engine:       types.StringValue(s.Engine),
				Host:         types.StringValue(s.Host),
				Port:         optPort(s.Port),
				User:         types.StringValue(s.User),
				Database:     types.StringValue(s.Database),
				Group:        optString(s.Group),
				HasPassword:  types.BoolValue(s.HasPassword),
				Detected:     detectedValue(s.Detected),
			}, nil
		})
}
