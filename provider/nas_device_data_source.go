package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ datasource.DataSource                     = (*nasDeviceDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*nasDeviceDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*nasDeviceDataSource)(nil)
)

// NewNASDeviceDataSource is the haven_nas_device data source, which looks
// up a NAS device declared elsewhere, so that NAS shares and restores can
// refer to it.
func NewNASDeviceDataSource() datasource.DataSource {
	return &nasDeviceDataSource{}
}

type nasDeviceDataSource struct {
	namedObjectSource
}

type nasDeviceDataSourceModel struct {
	ID                 types.String `tfsdk:"id"`
	Version            types.Int64  `tfsdk:"version"`
	Name               types.String `tfsdk:"name"`
	Host               types.String `tfsdk:"host"`
	Protocols          types.Set    `tfsdk:"protocols"`
	SMBUser            types.String `tfsdk:"smb_user"`
	SMBDomain          types.String `tfsdk:"smb_domain"`
	NFSUID             types.Int64  `tfsdk:"nfs_uid"`
	NFSGID             types.Int64  `tfsdk:"nfs_gid"`
	NFSPort            types.Int64  `tfsdk:"nfs_port"`
	NFSMountPort       types.Int64  `tfsdk:"nfs_mount_port"`
	ProxyFileServerIDs types.Set    `tfsdk:"proxy_file_server_ids"`
	Group              types.String `tfsdk:"group"`
	HasSMBPassword     types.Bool   `tfsdk:"has_smb_password"`
	HasSMBKeytab       types.Bool   `tfsdk:"has_smb_keytab"`
}

func (d *nasDeviceDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_nas_device"
}

func (d *nasDeviceDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	number := func(desc string) schema.Int64Attribute {
		return schema.Int64Attribute{MarkdownDescription: desc, Computed: true}
	}
	strings := func(desc string) schema.SetAttribute {
		return schema.SetAttribute{MarkdownDescription: desc, ElementType: types.StringType, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a NAS device declared in Haven by `id` or by `name`. The SMB password and " +
			"keytab are never exposed; `has_smb_password` and `has_smb_keytab` say whether the server holds one.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the NAS device. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the NAS device in Haven. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version":               number("Version of the NAS device on the Haven server; it increases by one on every change."),
			"host":                  computed(descNASDeviceHost),
			"protocols":             strings(descNASDeviceProtocols),
			"smb_user":              computed("SMB: the account the NAS proxies sign in as; null without `smb`."),
			"smb_domain":            computed("SMB: the domain or Kerberos realm of `smb_user`; null when it has none."),
			"nfs_uid":               number(fmt.Sprintf(descNASDeviceNFSID, "user")),
			"nfs_gid":               number(fmt.Sprintf(descNASDeviceNFSID, "group")),
			"nfs_port":              number(fmt.Sprintf(descNASDeviceNFSPort, "NFS") + " Null when the portmapper is asked."),
			"nfs_mount_port":        number(fmt.Sprintf(descNASDeviceNFSPort, "MOUNT") + " Null when the portmapper is asked."),
			"proxy_file_server_ids": strings(descNASDeviceProxies),
			"group":                 computed(descNASDeviceGroup + " Null when the NAS device has none."),
			"has_smb_password": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds an SMB password for this NAS device.",
				Computed:            true,
			},
			"has_smb_keytab": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a Kerberos keytab for this NAS device.",
				Computed:            true,
			},
		},
	}
}

func (d *nasDeviceDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "NAS device", d.client.NASDevices(),
		func(m *nasDeviceDataSourceModel) (types.String, types.String) { return m.ID, m.Name },
		func(n *api.NASDevice) (string, string) { return n.ID, n.Name },
		func(n *api.NASDevice) (nasDeviceDataSourceModel, diag.Diagnostics) {
			return nasDeviceDataSourceModel{
				ID:                 types.StringValue(n.ID),
				Version:            types.Int64Value(n.Version),
				Name:               types.StringValue(n.Name),
				Host:               types.StringValue(n.Host),
				Protocols:          stringSet(n.Protocols),
				SMBUser:            optString(n.SMBUser),
				SMBDomain:          optString(n.SMBDomain),
				NFSUID:             types.Int64Value(n.NFSUID),
				NFSGID:             types.Int64Value(n.NFSGID),
				NFSPort:            optPort(n.NFSPort),
				NFSMountPort:       optPort(n.NFSMountPort),
				ProxyFileServerIDs: stringSet(n.ProxyFileServerIDs),
				Group:              optString(n.Group),
				HasSMBPassword:     types.BoolValue(n.HasSMBPassword),
				HasSMBKeytab:       types.BoolValue(n.HasSMBKeytab),
			}, nil
		})
}
