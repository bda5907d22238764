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
	_ datasource.DataSource                     = (*filesetDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*filesetDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*filesetDataSource)(nil)
)

// NewFilesetDataSource is the haven_fileset data source, which looks up a
// fileset managed elsewhere, for example to find its recovery points.
func NewFilesetDataSource() datasource.DataSource {
	return &filesetDataSource{}
}

type filesetDataSource struct {
	namedObjectSource
}

func (d *filesetDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_fileset"
}

func (d *filesetDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	list := func(desc string) schema.ListAttribute {
		return schema.ListAttribute{MarkdownDescription: desc, ElementType: types.StringType, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a Haven fileset by `id` or by `name`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the fileset. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the fileset. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the fileset on the server; it increases by one on every change.",
				Computed:            true,
			},
			"file_server_id": computed("Id of the file server whose files are backed up."),
			"include_paths":  list(descIncludePaths),
			"exclude_globs":  list(descExcludeGlobs + " Empty when nothing is excluded."),
			"policy_id":      computed("Id of the backup policy that schedules and retains the backups."),
			"storage_id":     computed("Id of the storage that holds the recovery points."),
			"group":          computed(descGroup + " Null when the fileset has none."),
		},
	}
}

func (d *filesetDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "fileset", d.client.Filesets(), func(m *filesetModel) (types.String, types.String) { return m.ID, m.Name },
		func(f *api.Fileset) (string, string) { return f.ID, f.Name },
		func(f *api.Fileset) (filesetModel, diag.Diagnostics) {
			var m filesetModel
			m.fill(f)
			return m, nil
		})
}
