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
	_ datasource.DataSource                     = (*databaseSetDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*databaseSetDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*databaseSetDataSource)(nil)
)

// NewDatabaseSetDataSource is the haven_database_set data source, which
// looks up a database set managed elsewhere, for example to find its
// recovery points.
func NewDatabaseSetDataSource() datasource.DataSource {
	return &databaseSetDataSource{}
}

type databaseSetDataSource struct {
	namedObjectSource
}

func (d *databaseSetDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_database_set"
}

func (d *databaseSetDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a Haven database set by `id` or by `name`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the database set. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the database set. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the database set on the server; it increases by one on every change.",
				Computed:            true,
			},
			"database_server_id": computed("Id of the database server that is backed up."),
			"policy_id":          computed("Id of the backup policy that schedules and retains the backups."),
			"storage_id":         computed("Id of the storage that holds the recovery points."),
			"verify_restore": schema.BoolAttribute{
				MarkdownDescription: "Whether each full and differential point is restored into a scratch cluster and checked, " +
					"with the result recorded on the point (`database.verified` of the `haven_recovery_point` data source).",
				Computed: true,
			},
			"group": computed(descDatabaseSetGroup + " Null when the database set has none."),
		},
	}
}

func (d *databaseSetDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "database set", d.client.DatabaseSets(),
		func(m *databaseSetModel) (types.String, types.String) { return m.ID, m.Name },
		func(s *api.DatabaseSet) (string, string) { return s.ID, s.Name },
		func(s *api.DatabaseSet) (databaseSetModel, diag.Diagnostics) {
			var m databaseSetModel
			m.fill(s)
			return m, nil
		})
}
