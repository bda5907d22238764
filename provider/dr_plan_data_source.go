package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var _ datasource.DataSourceWithConfigure = (*drPlanDataSource)(nil)

// NewDRPlanDataSource is the haven_dr_plan data source: a DR plan and
// where its copies stand, by id or name.
func NewDRPlanDataSource() datasource.DataSource {
	return &drPlanDataSource{}
}

type drPlanDataSource struct {
	namedObjectSource
}

type drPlanDataSourceModel struct {
	ID                         types.String `tfsdk:"id"`
	Version                    types.Int64  `tfsdk:"version"`
	Name                       types.String `tfsdk:"name"`
	TargetID                   types.String `tfsdk:"target_id"`
	ReplicationIntervalMinutes types.Int64  `tfsdk:"replication_interval_minutes"`
	ProtectedVMIDs             types.List   `tfsdk:"protected_vm_ids"`
	ProtectionRuleIDs          types.List   `tfsdk:"protection_rule_ids"`
	Group                      types.String `tfsdk:"group"`
	Status                     types.List   `tfsdk:"status"`
	LastReplicationJobID       types.String `tfsdk:"last_replication_job_id"`
	LastReplicationState       types.String `tfsdk:"last_replication_state"`
}

func (d *drPlanDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_dr_plan"
}

func (d *drPlanDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	status := map[string]schema.Attribute{}
	for name, desc := range drVMStatusDescriptions() {
		switch drVMStatusType.AttrTypes[name] {
		case types.Int64Type:
			status[name] = schema.Int64Attribute{MarkdownDescription: desc, Computed: true}
		case types.BoolType:
			status[name] = schema.BoolAttribute{MarkdownDescription: desc, Computed: true}
		case types.StringType:
			status[name] = schema.StringAttribute{MarkdownDescription: desc, Computed: true}
		default:
			status[name] = schema.MapAttribute{MarkdownDescription: desc, ElementType: types.StringType, Computed: true}
		}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a DR plan by `id` or by `name`, with where each VM's copy in AWS stands: the " +
			"recovery point it holds, its EBS snapshots, its age and lag, and whether it is late.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the plan. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the plan in Haven. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version":                      schema.Int64Attribute{MarkdownDescription: "Version of the plan on the server.", Computed: true},
			"target_id":                    schema.StringAttribute{MarkdownDescription: "Id of the plan's AWS target.", Computed: true},
			"replication_interval_minutes": schema.Int64Attribute{MarkdownDescription: "How often copies are due, in minutes.", Computed: true},
			"protected_vm_ids": schema.ListAttribute{MarkdownDescription: "The protected VMs the plan's entries name " +
				"(`vms[*].protected_vm_id`), in the plan's order. The VMs of its protection rules are in `status`.",
				ElementType: types.StringType, Computed: true},
			"protection_rule_ids": schema.ListAttribute{MarkdownDescription: "The VM protection rules the plan's entries " +
				"name (`vms[*].protection_rule_id`), in the plan's order; each stands for every VM the rule protects.",
				ElementType: types.StringType, Computed: true},
			"group": schema.StringAttribute{MarkdownDescription: "Administrative group of the plan, if any.", Computed: true},
			"status": schema.ListNestedAttribute{
				MarkdownDescription: "Where each VM's copy in AWS stands.",
				Computed:            true,
				NestedObject:        schema.NestedAttributeObject{Attributes: status},
			},
			"last_replication_job_id": schema.StringAttribute{MarkdownDescription: "The plan's newest replication job.", Computed: true},
			"last_replication_state":  schema.StringAttribute{MarkdownDescription: "How that job stands.", Computed: true},
		},
	}
}

func (d *drPlanDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "DR plan", d.client.DRPlans(), func(m *drPlanDataSourceModel) (types.String, types.String) { return m.ID, m.Name },
		func(p *api.DRPlan) (string, string) { return p.ID, p.Name },
		func(p *api.DRPlan) (drPlanDataSourceModel, diag.Diagnostics) {
			vmIDs, ruleIDs := []string{}, []string{}
			for _, v := range p.VMs {
				if v.ProtectionRuleID != "" {
					ruleIDs = append(ruleIDs, v.ProtectionRuleID)
				} else {
					vmIDs = append(vmIDs, v.ProtectedVMID)
				}
			}
			vms, diags := types.ListValueFrom(ctx, types.StringType, vmIDs)
			rules, d := types.ListValueFrom(ctx, types.StringType, ruleIDs)
			diags.Append(d...)
			m := drPlanDataSourceModel{ID: types.StringValue(p.ID), Version: types.Int64Value(p.Version), Name: types.StringValue(p.Name),
				TargetID: types.StringValue(p.TargetID), ReplicationIntervalMinutes: types.Int64Value(int64(p.ReplicationIntervalMinutes)),
				ProtectedVMIDs: vms, ProtectionRuleIDs: rules, Group: optString(p.Group)}
			m.Status, m.LastReplicationJobID, m.LastReplicationState, d = drStatusValue(p.Status)
			diags.Append(d...)
			return m, diags
		})
}
