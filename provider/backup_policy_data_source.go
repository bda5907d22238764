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
	_ datasource.DataSource                     = (*backupPolicyDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*backupPolicyDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*backupPolicyDataSource)(nil)
)

// NewBackupPolicyDataSource is the haven_backup_policy data source, which
// looks up a policy managed elsewhere so workloads can refer to it.
func NewBackupPolicyDataSource() datasource.DataSource {
	return &backupPolicyDataSource{}
}

type backupPolicyDataSource struct {
	namedObjectSource
}

func (d *backupPolicyDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_backup_policy"
}

func (d *backupPolicyDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	str := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	num := func(desc string) schema.Int64Attribute {
		return schema.Int64Attribute{MarkdownDescription: desc, Computed: true}
	}
	days := schema.SetAttribute{MarkdownDescription: descDaysOfWeek, ElementType: types.StringType, Computed: true}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a Haven backup policy by `id` or by `name`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the policy. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the policy. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version":     num("Version of the policy on the server; it increases by one on every change."),
			"description": str("Free text describing the policy."),
			"timezone":    str("IANA timezone in which the schedules' `at` times are read."),
			"full": schema.SingleNestedAttribute{
				MarkdownDescription: descFull,
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"days_of_week": days,
					"day_of_month": num(descDayOfMonth),
					"at":           str(descAt),
				},
			},
			"incremental": schema.SingleNestedAttribute{
				MarkdownDescription: descIncremental + " Null when the policy has no incremental schedule.",
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"days_of_week": days,
					"at":           str(descAt),
					"every_hours":  num(descEveryHours),
				},
			},
			"retention": schema.SingleNestedAttribute{
				MarkdownDescription: descRetention,
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"daily_days":     num("Days a daily recovery point is kept."),
					"weekly_weeks":   num("Weeks a weekly recovery point is kept."),
					"monthly_months": num("Months a monthly recovery point is kept."),
					"yearly_years":   num("Years a yearly recovery point is kept."),
					"log_days":       num("Days database transaction-log backups are kept (database workloads are on the roadmap)."),
				},
			},
			"tiering": schema.SingleNestedAttribute{
				MarkdownDescription: descTiering,
				Computed:            true,
				Attributes: map[string]schema.Attribute{
					"warm_days":       num("Days a recovery point stays in the warm tier at least."),
					"cold_after_days": num("Days after creation at which a kept recovery point moves to the cold tier; null means never."),
				},
			},
			"log_backup_interval_minutes": num(descLogInterval),
			"window_hours":                num(descWindowHours),
			"bandwidth_mbps":              num(descBandwidth),
			"app_consistent":              schema.BoolAttribute{MarkdownDescription: descAppConsistent, Computed: true},
			"pre_freeze_script":           str(descPreFreeze),
			"post_thaw_script":            str(descPostThaw),
			"script_timeout_seconds":      num("Seconds a pre-freeze or post-thaw script may run."),
			"cbt":                         schema.BoolAttribute{MarkdownDescription: descCBT, Computed: true},
		},
	}
}

func (d *backupPolicyDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "backup policy", d.client.Policies(), func(m *policyModel) (types.String, types.String) { return m.ID, m.Name },
		func(p *api.Policy) (string, string) { return p.ID, p.Name },
		func(p *api.Policy) (policyModel, diag.Diagnostics) {
			var m policyModel
			diags := m.fill(ctx, p, true)
			return m, diags
		})
}
