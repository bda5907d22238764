package provider

import (
	"context"
	"fmt"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                   = (*drPlanResource)(nil)
	_ resource.ResourceWithConfigure      = (*drPlanResource)(nil)
	_ resource.ResourceWithImportState    = (*drPlanResource)(nil)
	_ resource.ResourceWithValidateConfig = (*drPlanResource)(nil)
)

// NewDRPlanResource is the haven_dr_plan resource: protected VMs
// replicated to an AWS target's EBS snapshots, and how a failover
// launches them.
func NewDRPlanResource() resource.Resource {
	return &drPlanResource{}
}

type drPlanResource struct {
	client *api.Client
}

type drPlanModel struct {
	ID                         types.String        `tfsdk:"id"`
	Version                    types.Int64         `tfsdk:"version"`
	Name                       types.String        `tfsdk:"name"`
	TargetID                   types.String        `tfsdk:"target_id"`
	ReplicationIntervalMinutes types.Int64         `tfsdk:"replication_interval_minutes"`
	VMs                        []drPlanVMModel     `tfsdk:"vms"`
	TestNetwork                *drTestNetworkModel `tfsdk:"test_network"`
	Group                      types.String        `tfsdk:"group"`
	Status                     types.List          `tfsdk:"status"`
	LastReplicationJobID       types.String        `tfsdk:"last_replication_job_id"`
	LastReplicationState       types.String        `tfsdk:"last_replication_state"`
}

type drPlanVMModel struct {
	ProtectedVMID    types.String `tfsdk:"protected_vm_id"`
	ProtectionRuleID types.String `tfsdk:"protection_rule_id"`
	Name             types.String `tfsdk:"name"`
	InstanceType     types.String `tfsdk:"instance_type"`
	SubnetID         types.String `tfsdk:"subnet_id"`
	PrivateIP        types.String `tfsdk:"private_ip"`
	SecurityGroupIDs types.Set    `tfsdk:"security_group_ids"`
	Tags             types.Map    `tfsdk:"tags"`
	BootGroup        types.Int64  `tfsdk:"boot_group"`
	DependsOn        types.Set    `tfsdk:"depends_on"`
	UserData         types.String `tfsdk:"user_data"`
	ProbePort        types.Int64  `tfsdk:"probe_port"`
}

type drTestNetworkModel struct {
	VPCID            types.String `tfsdk:"vpc_id"`
	SubnetID         types.String `tfsdk:"subnet_id"`
	SecurityGroupIDs types.Set    `tfsdk:"security_group_ids"`
}

// drVMStatusType is one element of the status attribute.
var drVMStatusType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"name":                 types.StringType,
	"protected_vm_id":      types.StringType,
	"point_id":             types.StringType,
	"point_time":           types.StringType,
	"copied_at":            types.StringType,
	"snapshot_ids":         types.MapType{ElemType: types.StringType},
	"age_seconds":          types.Int64Type,
	"lag_seconds":          types.Int64Type,
	"late":                 types.BoolType,
	"instance_type":        types.StringType,
	"instance_type_reason": types.StringType,
}}

// drVMStatusAttributes describe the status attribute's elements, for the
// resource and the data source alike.
func drVMStatusDescriptions() map[string]string {
	return map[string]string{
		"name":                 "The machine's name in the plan: for a VM of a `protection_rule_id` entry, the VM's name.",
		"protected_vm_id":      "The protected VM.",
		"point_id":             "The recovery point the VM's copy in AWS holds; null before the first copy.",
		"point_time":           "When that point was taken (RFC 3339).",
		"copied_at":            "When the copy completed (RFC 3339).",
		"snapshot_ids":         "The copy's EBS snapshot of each disk, by disk key.",
		"age_seconds":          "Seconds since the copy completed.",
		"lag_seconds":          "Replication lag: seconds since the copy's point was taken, or, before the first copy, since the newest point was.",
		"late":                 "Whether the copy is older than `replication_interval_minutes` while a newer point exists.",
		"instance_type":        "The instance type a failover launches: the one configured, or the pick of `auto`, made at the last replication.",
		"instance_type_reason": "Why `auto` picked that type (or why it could not pick one).",
	}
}

func drStatusSchema() schema.ListNestedAttribute {
	attrs := map[string]schema.Attribute{}
	for name, desc := range drVMStatusDescriptions() {
		switch drVMStatusType.AttrTypes[name] {
		case types.Int64Type:
			attrs[name] = schema.Int64Attribute{MarkdownDescription: desc, Computed: true}
		case types.BoolType:
			attrs[name] = schema.BoolAttribute{MarkdownDescription: desc, Computed: true}
		case types.StringType:
			attrs[name] = schema.StringAttribute{MarkdownDescription: desc, Computed: true}
		default:
			attrs[name] = schema.MapAttribute{MarkdownDescription: desc, ElementType: types.StringType, Computed: true}
		}
	}
	return schema.ListNestedAttribute{
		MarkdownDescription: "Where each VM's copy in AWS stands, read from the server at every refresh.",
		Computed:            true,
		NestedObject:        schema.NestedAttributeObject{Attributes: attrs},
	}
}

func (r *drPlanResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_dr_plan"
}

func (r *drPlanResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	groupIDs := func(desc string) schema.SetAttribute {
		return schema.SetAttribute{MarkdownDescription: desc, ElementType: types.StringType, Optional: true,
			Validators: []validator.Set{setvalidator.SizeAtLeast(1), setvalidator.ValueStringsAre(stringvalidator.RegexMatches(
				groupIDShape, "must be a security group id such as sg-0a1b2c3d4e5f60718"))}}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A disaster recovery plan: protected VMs whose recovery points the server copies into an AWS " +
			"target as EBS snapshots, and how a failover or a DR test launches them there (instance type, network, boot " +
			"order, boot script). Replication is incremental: each copy after the first puts only the blocks that changed since the " +
			"previous one, which is deleted once the new one is complete, so each disk has one copy. A replication is due " +
			"when a VM has a point newer than its copy and its copy is at least `replication_interval_minutes` old; " +
			"`haven dr-plans replicate` runs one now. `status` says how old each VM's copy is. `haven_dr_test` runs a drill of the plan in its " +
			"`test_network`, and `haven_dr_failover` fails it over.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the plan.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the plan on the server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the plan in Haven: letters, digits, `.`, `_` and `-`, "+
					"starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"target_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_aws_target` the VMs are copied into and recovered in. While a plan " +
					"uses a target, the target cannot be deleted.",
				Required:   true,
				Validators: []validator.String{objectID("AWS target", "haven_aws_target.dr.id")},
			},
			"replication_interval_minutes": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf("How often copies are due, in minutes (at least %d): a VM whose copy is "+
					"at least this old and that has a newer recovery point is copied again.", api.MinReplicationIntervalMinutes),
				Required:   true,
				Validators: []validator.Int64{int64validator.Between(api.MinReplicationIntervalMinutes, 7*24*60)},
			},
			"vms": schema.ListNestedAttribute{
				MarkdownDescription: "The protected VMs of the plan, each with how a failover launches it. An entry names " +
					"one protected VM (`protected_vm_id`) or a VM protection rule (`protection_rule_id`), which stands " +
					"for every VM the rule protects.",
				Required:   true,
				Validators: []validator.List{listvalidator.SizeAtLeast(1)},
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"protected_vm_id": schema.StringAttribute{
						MarkdownDescription: "Id of the `haven_protected_vm`. Give exactly one of `protected_vm_id` and " +
							"`protection_rule_id`. While a plan lists it, it cannot be deleted.",
						Optional:   true,
						Validators: []validator.String{objectID("protected VM", "haven_protected_vm.db.id")},
					},
					"protection_rule_id": schema.StringAttribute{
						MarkdownDescription: "Id of a `haven_vm_protection_rule`, instead of `protected_vm_id`: the entry " +
							"stands for every VM the rule protects at the time (so a VM the rule selects later is " +
							"replicated and failed over from then on), each launched with this entry's settings under " +
							"its VM name, or `<VM name>-<entry name>` when another machine of the plan has that name. " +
							"A VM the plan also lists by itself keeps its own entry. `depends_on` naming this entry " +
							"waits for all of its VMs. Such an entry cannot have a `private_ip`; `status` lists its VMs.",
						Optional:   true,
						Validators: []validator.String{objectID("VM protection rule", "haven_vm_protection_rule.web.id")},
					},
					"name": schema.StringAttribute{
						MarkdownDescription: "The machine's name in the plan, unique in it, which `depends_on` refers to. " +
							"Defaults to the protected VM's name, or to the rule's name for a `protection_rule_id` entry.",
						Optional:      true,
						Computed:      true,
						Validators:    objectName(),
						PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
					},
					"instance_type": schema.StringAttribute{
						MarkdownDescription: "EC2 instance type, such as `m6i.large`, or `auto` (the default): picked from the " +
							"VM's CPUs and memory at replication, the smallest general purpose type that holds them; " +
							"`status` records the pick and the reason.",
						Optional: true,
						Computed: true,
						Default:  stringdefault.StaticString(api.InstanceTypeAuto),
						Validators: []validator.String{stringvalidator.Any(stringvalidator.OneOf(api.InstanceTypeAuto),
							stringvalidator.RegexMatches(instanceTypeShape, "must be an EC2 instance type such as m6i.large"))},
					},
					"subnet_id": schema.StringAttribute{
						MarkdownDescription: "Subnet the machine launches in at failover; the target's `subnet_id` by default.",
						Optional:            true,
						Validators:          []validator.String{stringvalidator.RegexMatches(subnetIDShape, "must be a subnet id such as subnet-0a1b2c3d4e5f60718")},
					},
					"private_ip": schema.StringAttribute{
						MarkdownDescription: "Private IPv4 address of the machine, in `subnet_id` (which it requires). Not " +
							"with `protection_rule_id`: the rule's VMs cannot share one address.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("subnet_id"))},
					},
					"security_group_ids": groupIDs("Security groups of the machine; the target's by default."),
					"tags": schema.MapAttribute{
						MarkdownDescription: "Tags of the machine's instance. Keys starting with `aws:` or `haven:` are reserved.",
						ElementType:         types.StringType,
						Optional:            true,
					},
					"boot_group": schema.Int64Attribute{
						MarkdownDescription: "Failover order: the machines of a group start once every machine of the groups " +
							"before it is ready. Default 0.",
						Optional:   true,
						Computed:   true,
						Default:    int64default.StaticInt64(0),
						Validators: []validator.Int64{int64validator.Between(0, 100)},
					},
					"depends_on": schema.SetAttribute{
						MarkdownDescription: "Names of machines of the plan, in this boot group or an earlier one, that must be " +
							"ready (running, passing their status checks and their `probe_port`) before this one launches.",
						ElementType: types.StringType,
						Optional:    true,
						Validators:  []validator.Set{setvalidator.SizeAtLeast(1)},
					},
					"user_data": schema.StringAttribute{
						MarkdownDescription: "Boot script, run as EC2 user data (for example, to update DNS). At most 16 KiB.",
						Optional:            true,
						Validators:          []validator.String{stringvalidator.LengthBetween(1, 16*1024)},
					},
					"probe_port": schema.Int64Attribute{
						MarkdownDescription: "A TCP port (such as 22 or 3389) that must accept a connection before the machine " +
							"counts as ready; 0 (the default) checks only EC2's status checks.",
						Optional:   true,
						Computed:   true,
						Default:    int64default.StaticInt64(0),
						Validators: []validator.Int64{int64validator.Between(0, 65535)},
					},
				}},
			},
			"test_network": schema.SingleNestedAttribute{
				MarkdownDescription: "Where DR tests launch, apart from production.",
				Optional:            true,
				Attributes: map[string]schema.Attribute{
					"vpc_id": schema.StringAttribute{
						MarkdownDescription: "VPC of the DR tests.",
						Required:            true,
						Validators:          []validator.String{stringvalidator.RegexMatches(vpcIDShape, "must be a VPC id such as vpc-0a1b2c3d4e5f60718")},
					},
					"subnet_id": schema.StringAttribute{
						MarkdownDescription: "Subnet of the DR tests.",
						Required:            true,
						Validators:          []validator.String{stringvalidator.RegexMatches(subnetIDShape, "must be a subnet id such as subnet-0a1b2c3d4e5f60718")},
					},
					"security_group_ids": groupIDs("Security groups of the DR tests' machines."),
				},
			},
			"group": schema.StringAttribute{
				MarkdownDescription: "Administrative group of the plan.",
				Optional:            true,
				Validators:          objectName(),
			},
			"status":                  drStatusSchema(),
			"last_replication_job_id": schema.StringAttribute{MarkdownDescription: "The plan's newest replication job.", Computed: true},
			"last_replication_state":  schema.StringAttribute{MarkdownDescription: "How that job stands: queued, running, succeeded, failed, canceled or skipped.", Computed: true},
		},
	}
}

func (r *drPlanResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig applies the server's rules for what a vms entry names at
// plan time: a protected VM or a VM protection rule, exactly one of them,
// and no private_ip for a rule's VMs. Unknown values are left to apply,
// where the server names the same attribute.
func (r *drPlanResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var vms types.List
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("vms"), &vms)...)
	if resp.Diagnostics.HasError() || !isSet(vms) {
		return
	}
	for i, e := range vms.Elements() {
		o, ok := e.(types.Object)
		if !ok || !isSet(o) {
			continue
		}
		args := o.Attributes()
		vm, rule, ip := args["protected_vm_id"], args["protection_rule_id"], args["private_ip"]
		at := func(name string) (path.Path, string) {
			return path.Root("vms").AtListIndex(i).AtName(name), fmt.Sprintf("vms[%d].%s", i, name)
		}
		given := func(v attr.Value) bool { return v != nil && isSet(v) }
		switch {
		case vm != nil && rule != nil && vm.IsNull() && rule.IsNull():
			p, name := at("protected_vm_id")
			resp.Diagnostics.AddAttributeError(p, "Missing protected VM",
				fmt.Sprintf("Attribute %s is required: the id of a haven_protected_vm, or instead protection_rule_id, the "+
					"id of a haven_vm_protection_rule whose VMs the entry stands for.", name))
		case given(vm) && given(rule):
			p, name := at("protection_rule_id")
			resp.Diagnostics.AddAttributeError(p, "Conflicting VM references",
				fmt.Sprintf("Attribute %s cannot be given with protected_vm_id: an entry is one protected VM, or the "+
					"VMs of one rule. Remove one of them.", name))
		case given(rule) && given(ip):
			p, name := at("private_ip")
			resp.Diagnostics.AddAttributeError(p, "Private IP with a protection rule",
				fmt.Sprintf("Attribute %s cannot be given with protection_rule_id: the rule's VMs cannot share one "+
					"address. List a VM that needs a fixed address in an entry of its own (protected_vm_id).", name))
		}
	}
}

func setStrings(ctx context.Context, s types.Set, diags *diag.Diagnostics) []string {
	if s.IsNull() || s.IsUnknown() {
		return nil
	}
	var out []string
	diags.Append(s.ElementsAs(ctx, &out, false)...)
	return out
}

func (m *drPlanModel) spec(ctx context.Context, diags *diag.Diagnostics) api.DRPlanSpec {
	s := api.DRPlanSpec{Name: m.Name.ValueString(), TargetID: m.TargetID.ValueString(),
		ReplicationIntervalMinutes: int(m.ReplicationIntervalMinutes.ValueInt64()), Group: m.Group.ValueString()}
	for _, v := range m.VMs {
		vm := api.DRPlanVM{ProtectedVMID: v.ProtectedVMID.ValueString(), ProtectionRuleID: v.ProtectionRuleID.ValueString(), InstanceType: v.InstanceType.ValueString(),
			SubnetID: v.SubnetID.ValueString(), PrivateIP: v.PrivateIP.ValueString(), BootGroup: int(v.BootGroup.ValueInt64()),
			UserData: v.UserData.ValueString(), ProbePort: int(v.ProbePort.ValueInt64()),
			SecurityGroupIDs: setStrings(ctx, v.SecurityGroupIDs, diags), DependsOn: setStrings(ctx, v.DependsOn, diags)}
		if isSet(v.Name) {
			vm.Name = v.Name.ValueString()
		}
		if isSet(v.Tags) {
			diags.Append(v.Tags.ElementsAs(ctx, &vm.Tags, false)...)
		}
		s.VMs = append(s.VMs, vm)
	}
	if n := m.TestNetwork; n != nil {
		s.TestNetwork = &api.DRTestNetwork{VPCID: n.VPCID.ValueString(), SubnetID: n.SubnetID.ValueString(),
			SecurityGroupIDs: setStrings(ctx, n.SecurityGroupIDs, diags)}
	}
	return s
}

func optStringMap(m map[string]string) types.Map {
	if len(m) == 0 {
		return types.MapNull(types.StringType)
	}
	values := map[string]attr.Value{}
	for k, v := range m {
		values[k] = types.StringValue(v)
	}
	return types.MapValueMust(types.StringType, values)
}

func optInt64(n *int64) types.Int64 {
	if n == nil {
		return types.Int64Null()
	}
	return types.Int64Value(*n)
}

// drStatusValue is a plan's status as the status attribute holds it.
func drStatusValue(st api.DRPlanStatus) (types.List, types.String, types.String, diag.Diagnostics) {
	list, diags := objectList(drVMStatusType, st.VMs, func(v api.DRVMStatus) map[string]attr.Value {
		snaps := map[string]string{}
		for _, d := range v.Disks {
			snaps[fmt.Sprint(d.DiskKey)] = d.SnapshotID
		}
		return map[string]attr.Value{
			"name": types.StringValue(v.Name), "protected_vm_id": types.StringValue(v.ProtectedVMID),
			"point_id": optString(v.PointID), "point_time": optTime(v.PointTime), "copied_at": optTime(v.CopiedAt),
			"snapshot_ids": optStringMap(snaps), "age_seconds": optInt64(v.AgeSeconds), "lag_seconds": optInt64(v.LagSeconds),
			"late": types.BoolValue(v.Late), "instance_type": optString(v.InstanceType), "instance_type_reason": optString(v.InstanceTypeReason),
		}
	})
	jobID, state := types.StringNull(), types.StringNull()
	if j := st.LastReplicationJob; j != nil {
		jobID, state = types.StringValue(j.ID), types.StringValue(j.State)
	}
	return list, jobID, state, diags
}

// fill copies the server's plan into the model.
func (m *drPlanModel) fill(p *api.DRPlan) diag.Diagnostics {
	m.ID = types.StringValue(p.ID)
	m.Version = types.Int64Value(p.Version)
	m.Name = types.StringValue(p.Name)
	m.TargetID = types.StringValue(p.TargetID)
	m.ReplicationIntervalMinutes = types.Int64Value(int64(p.ReplicationIntervalMinutes))
	m.Group = optString(p.Group)
	m.VMs = make([]drPlanVMModel, len(p.VMs))
	for i, v := range p.VMs {
		m.VMs[i] = drPlanVMModel{ProtectedVMID: optString(v.ProtectedVMID), ProtectionRuleID: optString(v.ProtectionRuleID), Name: types.StringValue(v.Name),
			InstanceType: types.StringValue(v.InstanceType), SubnetID: optString(v.SubnetID), PrivateIP: optString(v.PrivateIP),
			SecurityGroupIDs: optStringSet(v.SecurityGroupIDs), Tags: optStringMap(v.Tags), BootGroup: types.Int64Value(int64(v.BootGroup)),
			DependsOn: optStringSet(v.DependsOn), UserData: optString(v.UserData), ProbePort: types.Int64Value(int64(v.ProbePort))}
	}
	m.TestNetwork = nil
	if n := p.TestNetwork; n != nil {
		m.TestNetwork = &drTestNetworkModel{VPCID: types.StringValue(n.VPCID), SubnetID: types.StringValue(n.SubnetID),
			SecurityGroupIDs: optStringSet(n.SecurityGroupIDs)}
	}
	var diags diag.Diagnostics
	m.Status, m.LastReplicationJobID, m.LastReplicationState, diags = drStatusValue(p.Status)
	return diags
}

func (r *drPlanResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan drPlanModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.client.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create DR plan "+spec.Name, &plan, p, err, (*drPlanModel).fill)
}

func (r *drPlanResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "DR plan", func(m *drPlanModel) string { return m.ID.ValueString() }, r.client.DRPlans().Get, (*drPlanModel).fill)
}

func (r *drPlanResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state drPlanModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.client.DRPlans().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(), api.DRPlanRequest{DRPlanSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update DR plan "+spec.Name, &plan, p, err, (*drPlanModel).fill)
}

func (r *drPlanResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "DR plan", func(m *drPlanModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.DRPlans().Delete)
}

// ImportState takes an id or a name, as the server's Get does.
func (r *drPlanResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// The shapes of AWS ids and instance types, as the server checks them.
var (
	vpcIDShape        = regexp.MustCompile(`^vpc-([0-9a-f]{8}|[0-9a-f]{17})$`)
	subnetIDShape     = regexp.MustCompile(`^subnet-([0-9a-f]{8}|[0-9a-f]{17})$`)
	groupIDShape      = regexp.MustCompile(`^sg-([0-9a-f]{8}|[0-9a-f]{17})$`)
	instanceTypeShape = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)
)
