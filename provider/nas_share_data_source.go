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
	_ datasource.DataSource                     = (*nasShareDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*nasShareDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*nasShareDataSource)(nil)
)

// NewNASShareDataSource is the haven_nas_share data source, which looks up
// a NAS share managed elsewhere, for example to find its recovery points
// or to restore into it.
func NewNASShareDataSource() datasource.DataSource {
	return &nasShareDataSource{}
}

type nasShareDataSource struct {
	namedObjectSource
}

func (d *nasShareDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_nas_share"
}

func (d *nasShareDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	globs := func(desc string) schema.ListAttribute {
		return schema.ListAttribute{MarkdownDescription: desc, ElementType: types.StringType, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a Haven NAS share by `id` or by `name`: its id is the asset id of its " +
			"recovery points, and the `share_id` a `haven_restore`'s `nas` block restores into.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the NAS share. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the NAS share. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the NAS share on the server; it increases by one on every change.",
				Computed:            true,
			},
			"nas_device_id": computed("Id of the NAS device that serves the share."),
			"protocol":      computed(descNASShareProtocol),
			"share":         computed(descNASShareShare),
			"path":          computed(descNASSharePath + " Null when the whole share is protected."),
			"include":       globs("Glob patterns of what is backed up (empty: everything), " + descNASShareGlobs),
			"exclude":       globs("Glob patterns of what is left out, " + descNASShareGlobs),
			"policy_id":     computed("Id of the backup policy that schedules and retains the backups."),
			"storage_id":    computed("Id of the storage that holds the recovery points."),
			"group":         computed(descNASShareGroup + " Null when the device has none."),
		},
	}
}

func (d *nasShareDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "NAS share", d.client.NASShares(),
		func(m *nasShareModel) (types.String, types.String) { return m.ID, m.Name },
		func(s *api.NASShare) (string, string) { return s.ID, s.Name },
		func(s *api.NASShare) (nasShareModel, diag.Diagnostics) {
			var m nasShareModel
			m.fill(s)
			return m, nil
		})
}
