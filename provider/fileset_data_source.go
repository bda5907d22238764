package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/datasourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
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
	client *api.Client
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

func (d *filesetDataSource) ConfigValidators(context.Context) []datasource.ConfigValidator {
	return []datasource.ConfigValidator{
		datasourcevalidator.ExactlyOneOf(path.MatchRoot("id"), path.MatchRoot("name")),
	}
}

func (d *filesetDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *filesetDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg filesetModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	f, err := lookup(ctx, d.client.Filesets(), cfg.ID, cfg.Name, func(f *api.Fileset) (string, string) { return f.ID, f.Name })
	if err != nil {
		addLookupError(&resp.Diagnostics, "fileset", cfg.ID, cfg.Name, err)
		return
	}
	var state filesetModel
	state.fill(f)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}
