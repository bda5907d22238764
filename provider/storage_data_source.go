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
	_ datasource.DataSource                     = (*storageDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*storageDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*storageDataSource)(nil)
)

// NewStorageDataSource is the haven_storage data source, which looks up a
// storage managed elsewhere (another workspace, or by hand).
func NewStorageDataSource() datasource.DataSource {
	return &storageDataSource{}
}

type storageDataSource struct {
	namedObjectSource
}

type storageDataSourceModel struct {
	ID               types.String `tfsdk:"id"`
	Version          types.Int64  `tfsdk:"version"`
	Name             types.String `tfsdk:"name"`
	Kind             types.String `tfsdk:"kind"`
	Path             types.String `tfsdk:"path"`
	Bucket           types.String `tfsdk:"bucket"`
	Prefix           types.String `tfsdk:"prefix"`
	Region           types.String `tfsdk:"region"`
	Endpoint         types.String `tfsdk:"endpoint"`
	ForcePathStyle   types.Bool   `tfsdk:"force_path_style"`
	AccessKeyID      types.String `tfsdk:"access_key_id"`
	ColdStorageClass types.String `tfsdk:"cold_storage_class"`
	HasSecret        types.Bool   `tfsdk:"has_secret"`
}

func (d *storageDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_storage"
}

func (d *storageDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a Haven storage by `id` or by `name`. The secret access key is never exposed.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the storage. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the storage. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the storage on the server; it increases by one on every change.",
				Computed:            true,
			},
			"kind":     computed("Kind of storage: `filesystem` or `s3`."),
			"path":     computed("Directory on the Haven server (filesystem storages)."),
			"bucket":   computed("S3 bucket name (s3 storages)."),
			"prefix":   computed("Key prefix inside the bucket (s3 storages)."),
			"region":   computed("AWS region of the bucket (s3 storages)."),
			"endpoint": computed("URL of the S3-compatible service, if not AWS (s3 storages)."),
			"force_path_style": schema.BoolAttribute{
				MarkdownDescription: "Whether the bucket is addressed path-style (s3 storages).",
				Computed:            true,
			},
			"access_key_id":      computed("Access key ID of the S3 credentials, if any (s3 storages)."),
			"cold_storage_class": computed("S3 storage class of the cold tier, if any (s3 storages)."),
			"has_secret": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a secret access key for this storage.",
				Computed:            true,
			},
		},
	}
}

func (d *storageDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "storage", d.client.Storages(), func(m *storageDataSourceModel) (types.String, types.String) { return m.ID, m.Name },
		func(s *api.Storage) (string, string) { return s.ID, s.Name },
		func(s *api.Storage) (storageDataSourceModel, diag.Diagnostics) {
			state := storageDataSourceModel{
				ID:               types.StringValue(s.ID),
				Version:          types.Int64Value(s.Version),
				Name:             types.StringValue(s.Name),
				Kind:             types.StringValue(s.Kind),
				Path:             optString(s.Path),
				Bucket:           optString(s.Bucket),
				Prefix:           optString(s.Prefix),
				Region:           optString(s.Region),
				Endpoint:         optString(s.Endpoint),
				ForcePathStyle:   types.BoolValue(s.ForcePathStyle),
				AccessKeyID:      optString(s.AccessKeyID),
				ColdStorageClass: optString(s.ColdStorageClass),
				HasSecret:        types.BoolValue(s.HasSecret),
			}
			return state, nil
		})
}
