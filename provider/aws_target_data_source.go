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
	_ datasource.DataSource                     = (*awsTargetDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*awsTargetDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*awsTargetDataSource)(nil)
)

// NewAWSTargetDataSource is the haven_aws_target data source, which looks
// up an AWS target registered elsewhere (another workspace, or by hand).
func NewAWSTargetDataSource() datasource.DataSource {
	return &awsTargetDataSource{}
}

type awsTargetDataSource struct {
	namedObjectSource
}

type awsTargetDataSourceModel struct {
	ID               types.String `tfsdk:"id"`
	Version          types.Int64  `tfsdk:"version"`
	Name             types.String `tfsdk:"name"`
	Region           types.String `tfsdk:"region"`
	Credentials      types.String `tfsdk:"credentials"`
	AccessKeyID      types.String `tfsdk:"access_key_id"`
	RoleARN          types.String `tfsdk:"role_arn"`
	ExternalID       types.String `tfsdk:"external_id"`
	Endpoint         types.String `tfsdk:"endpoint"`
	VPCID            types.String `tfsdk:"vpc_id"`
	SubnetID         types.String `tfsdk:"subnet_id"`
	SecurityGroupIDs types.Set    `tfsdk:"security_group_ids"`
	Group            types.String `tfsdk:"group"`
	HasSecret        types.Bool   `tfsdk:"has_secret"`
	AccountID        types.String `tfsdk:"account_id"`
	Status           types.String `tfsdk:"status"`
	StatusMessage    types.String `tfsdk:"status_message"`
}

func (d *awsTargetDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_aws_target"
}

func (d *awsTargetDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up an AWS target registered with Haven by `id` or by `name`. The secret access key " +
			"is never exposed; `has_secret` says whether the server holds one.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the target. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the target in Haven. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the target on the server; it increases by one on every change.",
				Computed:            true,
			},
			"region":        computed("AWS region of the target."),
			"credentials":   computed("Where the credentials come from: `ambient`, `access_key` or `assume_role`."),
			"access_key_id": computed("Access key ID, if the target has one."),
			"role_arn":      computed("IAM role assumed, with `assume_role` credentials."),
			"external_id":   computed("External ID given when assuming the role, if any."),
			"endpoint":      computed("URL that replaces the endpoint of every AWS service, if any."),
			"vpc_id":        computed("Default VPC of the recovered machines, if any."),
			"subnet_id":     computed("Default subnet of the recovered machines, if any."),
			"security_group_ids": schema.SetAttribute{
				MarkdownDescription: "Default security groups of the recovered machines, if any.",
				ElementType:         types.StringType,
				Computed:            true,
			},
			"group": computed("Administrative group of the target, if any."),
			"has_secret": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a secret access key for this target.",
				Computed:            true,
			},
			"account_id":     computed("AWS account the credentials act in, as AWS STS answered at the last check."),
			"status":         computed("How the server's last check of the target went: `connected` or `error`."),
			"status_message": computed("What went wrong when `status` is `error`."),
		},
	}
}

func (d *awsTargetDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "AWS target", d.client.AWSTargets(), func(m *awsTargetDataSourceModel) (types.String, types.String) { return m.ID, m.Name },
		func(a *api.AWSTarget) (string, string) { return a.ID, a.Name },
		func(a *api.AWSTarget) (awsTargetDataSourceModel, diag.Diagnostics) {
			return awsTargetDataSourceModel{
				ID:               types.StringValue(a.ID),
				Version:          types.Int64Value(a.Version),
				Name:             types.StringValue(a.Name),
				Region:           types.StringValue(a.Region),
				Credentials:      types.StringValue(a.Credentials),
				AccessKeyID:      optString(a.AccessKeyID),
				RoleARN:          optString(a.RoleARN),
				ExternalID:       optString(a.ExternalID),
				Endpoint:         optString(a.Endpoint),
				VPCID:            optString(a.VPCID),
				SubnetID:         optString(a.SubnetID),
				SecurityGroupIDs: optStringSet(a.SecurityGroupIDs),
				Group:            optString(a.Group),
				HasSecret:        types.BoolValue(a.HasSecret),
				AccountID:        optString(a.AccountID),
				Status:           types.StringValue(a.Status),
				StatusMessage:    optString(a.StatusMessage),
			}, nil
		})
}
