package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/datasourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ datasource.DataSource                     = (*protectedVMDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*protectedVMDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*protectedVMDataSource)(nil)
)

// NewProtectedVMDataSource is the haven_protected_vm data source, which
// looks up the protection of one VM, whether a haven_protected_vm or a
// rule made it, for instance to feed its id to the recovery point data
// sources.
func NewProtectedVMDataSource() datasource.DataSource {
	return &protectedVMDataSource{}
}

type protectedVMDataSource struct {
	client *api.Client
}

type protectedVMDataSourceModel struct {
	ID               types.String `tfsdk:"id"`
	Version          types.Int64  `tfsdk:"version"`
	VCenterID        types.String `tfsdk:"vcenter_id"`
	InstanceUUID     types.String `tfsdk:"instance_uuid"`
	Name             types.String `tfsdk:"name"`
	PolicyID         types.String `tfsdk:"policy_id"`
	StorageID        types.String `tfsdk:"storage_id"`
	ExcludeDisks     types.Set    `tfsdk:"exclude_disks"`
	AppConsistent    types.Bool   `tfsdk:"app_consistent"`
	GuestUsername    types.String `tfsdk:"guest_username"`
	Group            types.String `tfsdk:"group"`
	MoRef            types.String `tfsdk:"moref"`
	Status           types.String `tfsdk:"status"`
	RuleID           types.String `tfsdk:"rule_id"`
	HasGuestPassword types.Bool   `tfsdk:"has_guest_password"`
}

func (d *protectedVMDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_protected_vm"
}

func (d *protectedVMDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Computed: true}
	}
	needsVCenter := stringvalidator.AlsoRequires(path.MatchRoot("vcenter_id"))
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up the protection of one VM, made by a `haven_protected_vm` or by a " +
			"`haven_vm_protection_rule`: by `id`, or by `vcenter_id` with the VM's `instance_uuid` or `name`. " +
			"Its `id` is the asset id recovery points and jobs name. The guest password is never exposed.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier of the protection. Give exactly one of `id`, `instance_uuid` and `name`.",
				Optional:            true,
				Computed:            true,
			},
			"vcenter_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_vcenter` the VM belongs to. Required with `instance_uuid` or " +
					"`name`; not allowed with `id`.",
				Optional: true,
				Computed: true,
				Validators: []validator.String{
					objectID("vCenter", "haven_vcenter.prod.id"),
					stringvalidator.ConflictsWith(path.MatchRoot("id")),
				},
			},
			"instance_uuid": schema.StringAttribute{
				MarkdownDescription: "Instance UUID of the VM (lower case), such as `data.haven_vm.db.instance_uuid`.",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{instanceUUID(), needsVCenter},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the VM in the vCenter inventory, as the server last saw it. " +
					"Reading fails when two protected VMs of the vCenter have this name; use `instance_uuid` then.",
				Optional:   true,
				Computed:   true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(1), needsVCenter},
			},
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the protection on the server; it increases by one on every change.",
				Computed:            true,
			},
			"policy_id":  computed("Id of the `haven_backup_policy` the VM is backed up under."),
			"storage_id": computed("Id of the `haven_storage` that holds the VM's recovery points."),
			"exclude_disks": schema.SetAttribute{
				MarkdownDescription: "Device keys of the virtual disks not backed up.",
				ElementType:         types.Int64Type,
				Computed:            true,
			},
			"app_consistent": schema.BoolAttribute{
				MarkdownDescription: "Whether snapshots quiesce the guest, when the protection overrides its policy; " +
					"null when the policy decides.",
				Computed: true,
			},
			"guest_username": computed("Guest OS account that runs the policy's scripts, if any."),
			"group":          computed("Administrative group of the protection, if any."),
			"moref":          computed("Managed object id of the VM (such as `vm-42`), as the server last saw it."),
			"status": computed("`active` (backed up on the policy's schedule), `unselected` (a rule protected " +
				"it and no longer selects it) or `missing` (the VM left the inventory)."),
			"rule_id": computed("Id of the `haven_vm_protection_rule` that made the protection, if one did."),
			"has_guest_password": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a guest password for this VM.",
				Computed:            true,
			},
		},
	}
}

func (d *protectedVMDataSource) ConfigValidators(context.Context) []datasource.ConfigValidator {
	return []datasource.ConfigValidator{
		datasourcevalidator.ExactlyOneOf(path.MatchRoot("id"), path.MatchRoot("instance_uuid"), path.MatchRoot("name")),
	}
}

func (d *protectedVMDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *protectedVMDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg protectedVMDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	p := d.find(ctx, &cfg, &resp.Diagnostics)
	if p == nil {
		return
	}
	var m protectedVMModel
	m.fill(p)
	state := protectedVMDataSourceModel{
		ID: m.ID, Version: m.Version, VCenterID: m.VCenterID, InstanceUUID: m.InstanceUUID, Name: m.Name,
		PolicyID: m.PolicyID, StorageID: m.StorageID, ExcludeDisks: m.ExcludeDisks, AppConsistent: m.AppConsistent,
		GuestUsername: m.GuestUsername, Group: m.Group, MoRef: m.MoRef, Status: m.Status, RuleID: m.RuleID,
		HasGuestPassword: m.HasGuestPassword,
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// find looks the protection up the way the configuration names it. The
// server's Get takes an id or the stored name (vCenter id and instance
// UUID), so its answer is checked against what was asked; a VM name is
// only in the listing.
func (d *protectedVMDataSource) find(ctx context.Context, cfg *protectedVMDataSourceModel, diags *diag.Diagnostics) *api.ProtectedVM {
	vcenter := cfg.VCenterID.ValueString()
	var attr, value, key string
	var matches func(*api.ProtectedVM) bool
	switch {
	case !cfg.ID.IsNull():
		attr, value, key = "id", cfg.ID.ValueString(), cfg.ID.ValueString()
		matches = func(p *api.ProtectedVM) bool { return p.ID == value }
	case !cfg.InstanceUUID.IsNull():
		attr, value = "instance_uuid", cfg.InstanceUUID.ValueString()
		key = api.ProtectedVMObjectName(vcenter, value)
		matches = func(p *api.ProtectedVM) bool {
			return p.VCenterID == vcenter && strings.EqualFold(p.InstanceUUID, value)
		}
	default:
		attr, value = "name", cfg.Name.ValueString()
		matches = func(p *api.ProtectedVM) bool { return p.VCenterID == vcenter && p.Name == value }
	}
	notFound := func() {
		where := ""
		if attr != "id" {
			where = " in vCenter " + vcenter
		}
		diags.AddAttributeError(path.Root(attr), "No such protected VM",
			fmt.Sprintf("The Haven server protects no VM with %s %q%s.", attr, value, where))
	}
	if key != "" {
		p, err := d.client.ProtectedVMs().Get(ctx, key)
		switch {
		case api.IsNotFound(err) || (err == nil && !matches(p)):
			notFound()
			return nil
		case err != nil:
			addAPIError(diags, fmt.Sprintf("Could not read protected VM %q", value), err, nil)
			return nil
		}
		return p
	}
	all, err := d.client.ProtectedVMs().ListAll(ctx)
	if err != nil {
		addAPIError(diags, fmt.Sprintf("Could not list protected VMs to find %q", value), err, nil)
		return nil
	}
	var found []*api.ProtectedVM
	for i := range all {
		if matches(&all[i]) {
			found = append(found, &all[i])
		}
	}
	switch len(found) {
	case 0:
		notFound()
		return nil
	case 1:
		return found[0]
	}
	uuids := make([]string, len(found))
	for i, p := range found {
		uuids[i] = p.InstanceUUID
	}
	diags.AddAttributeError(path.Root("name"), "Ambiguous protected VM name",
		fmt.Sprintf("%d protected VMs of vCenter %s are named %q (instance UUIDs %s): look one up by instance_uuid.",
			len(found), vcenter, value, strings.Join(uuids, ", ")))
	return nil
}
