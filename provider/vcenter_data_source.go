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
	_ datasource.DataSource                     = (*vcenterDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*vcenterDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*vcenterDataSource)(nil)
)

// NewVCenterDataSource is the haven_vcenter data source, which looks up a
// vCenter registered elsewhere (another workspace, or by hand), so that
// protections and rules can refer to it.
func NewVCenterDataSource() datasource.DataSource {
	return &vcenterDataSource{}
}

type vcenterDataSource struct {
	namedObjectSource
}

type vcenterDataSourceModel struct {
	ID            types.String `tfsdk:"id"`
	Version       types.Int64  `tfsdk:"version"`
	Name          types.String `tfsdk:"name"`
	URL           types.String `tfsdk:"url"`
	Username      types.String `tfsdk:"username"`
	Thumbprint    types.String `tfsdk:"thumbprint"`
	CAPEM         types.String `tfsdk:"ca_pem"`
	Insecure      types.Bool   `tfsdk:"insecure"`
	Group         types.String `tfsdk:"group"`
	HasPassword   types.Bool   `tfsdk:"has_password"`
	Status        types.String `tfsdk:"status"`
	StatusMessage types.String `tfsdk:"status_message"`
}

func (d *vcenterDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vcenter"
}

func (d *vcenterDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a vCenter registered with Haven by `id` or by `name`. The password is never " +
			"exposed; `has_password` says whether the server holds one.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the vCenter. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the vCenter in Haven. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the registration on the server; it increases by one on every change.",
				Computed:            true,
			},
			"url":        computed("HTTPS URL of the vCenter's SDK endpoint."),
			"username":   computed("vCenter user Haven logs in as."),
			"thumbprint": computed("Pinned thumbprint of the vCenter's TLS certificate, if trust is by thumbprint."),
			"ca_pem":     computed("PEM certificate of the authority that signed the vCenter's certificate, if trust is by CA."),
			"insecure": schema.BoolAttribute{
				MarkdownDescription: "Whether the vCenter's TLS certificate goes unverified.",
				Computed:            true,
			},
			"group": computed("Administrative group of the vCenter, if any."),
			"has_password": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a password for this vCenter.",
				Computed:            true,
			},
			"status":         computed("How the server's last login to the vCenter went: `connected` or `error`."),
			"status_message": computed("What went wrong when `status` is `error`."),
		},
	}
}

func (d *vcenterDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "vCenter", d.client.VCenters(), func(m *vcenterDataSourceModel) (types.String, types.String) { return m.ID, m.Name },
		func(v *api.VCenter) (string, string) { return v.ID, v.Name },
		func(v *api.VCenter) (vcenterDataSourceModel, diag.Diagnostics) {
			return vcenterDataSourceModel{
				ID:            types.StringValue(v.ID),
				Version:       types.Int64Value(v.Version),
				Name:          types.StringValue(v.Name),
				URL:           types.StringValue(v.URL),
				Username:      types.StringValue(v.Username),
				Thumbprint:    optString(v.Thumbprint),
				CAPEM:         optString(v.CAPEM),
				Insecure:      types.BoolValue(v.Insecure),
				Group:         optString(v.Group),
				HasPassword:   types.BoolValue(v.HasPassword),
				Status:        types.StringValue(v.Status),
				StatusMessage: optString(v.StatusMessage),
			}, nil
		})
}
