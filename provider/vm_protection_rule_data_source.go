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
	_ datasource.DataSource                     = (*vmProtectionRuleDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*vmProtectionRuleDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*vmProtectionRuleDataSource)(nil)
)

// NewVMProtectionRuleDataSource is the haven_vm_protection_rule data
// source, which looks up a rule managed elsewhere.
func NewVMProtectionRuleDataSource() datasource.DataSource {
	return &vmProtectionRuleDataSource{}
}

type vmProtectionRuleDataSource struct {
	namedObjectSource
}

func (d *vmProtectionRuleDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vm_protection_rule"
}

// Schema has the resource's attributes, so that the resource's model and
// fill serve both.
func (d *vmProtectionRuleDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	computedSet := func(desc string) schema.SetAttribute {
		return schema.SetAttribute{MarkdownDescription: desc, ElementType: types.StringType, Computed: true}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a VM protection rule by `id` or by `name`. The protections it made are " +
			"`haven_protected_vm` data sources away: their `rule_id` is this rule's `id`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the rule. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the rule. Give exactly one of `id` and `name`.",
				Optional:            true,
				Computed:            true,
				Validators:          objectName(),
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the rule on the server; it increases by one on every change.",
				Computed:            true,
			},
			"vcenter_id":             computed("Id of the `haven_vcenter` whose VMs the rule selects."),
			"folders":                computedSet("Inventory paths of the VM folders the rule selects from (and below)."),
			"tags":                   computedSet("vSphere tags, as `category:tag`, of which a selected VM carries one."),
			"name_regex":             computed("Regular expression a selected VM's name matches, if any."),
			"exclude_name_regex":     computed("Regular expression of VM names left out, if any."),
			"exclude_instance_uuids": computedSet("Instance UUIDs of VMs left out even when they match."),
			"policy_id":              computed("Id of the `haven_backup_policy` the selected VMs are backed up under."),
			"storage_id":             computed("Id of the `haven_storage` that holds the selected VMs' recovery points."),
			"group":                  computed("Administrative group of the rule and its protections, if any."),
			"selected_count": schema.Int64Attribute{
				MarkdownDescription: "How many VMs the rule protected when the server last evaluated it.",
				Computed:            true,
			},
		},
	}
}

func (d *vmProtectionRuleDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	readNamedObject(ctx, req, resp, "VM protection rule", d.client.VMProtectionRules(), func(m *vmProtectionRuleModel) (types.String, types.String) { return m.ID, m.Name },
		func(r *api.VMProtectionRule) (string, string) { return r.ID, r.Name },
		func(r *api.VMProtectionRule) (vmProtectionRuleModel, diag.Diagnostics) {
			var m vmProtectionRuleModel
			m.fill(r)
			return m, nil
		})
}
