package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/datasourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ datasource.DataSource                     = (*vmDataSource)(nil)
	_ datasource.DataSourceWithConfigure        = (*vmDataSource)(nil)
	_ datasource.DataSourceWithConfigValidators = (*vmDataSource)(nil)
)

// NewVMDataSource is the haven_vm data source, which finds one virtual
// machine in a registered vCenter's inventory.
func NewVMDataSource() datasource.DataSource {
	return &vmDataSource{}
}

type vmDataSource struct {
	client *api.Client
}

type vmModel struct {
	VCenterID     types.String `tfsdk:"vcenter_id"`
	Name          types.String `tfsdk:"name"`
	InventoryPath types.String `tfsdk:"inventory_path"`
	InstanceUUID  types.String `tfsdk:"instance_uuid"`
	MoRef         types.String `tfsdk:"moref"`
	Folder        types.String `tfsdk:"folder"`
	Tags          types.List   `tfsdk:"tags"`
	PowerState    types.String `tfsdk:"power_state"`
	Disks         types.List   `tfsdk:"disks"`
}

var vmDiskAttrTypes = map[string]attr.Type{
	"key": types.Int64Type, "label": types.StringType, "capacity_bytes": types.Int64Type,
}

// vmAttrTypes are a VM's attributes as an element of haven_vms.vms.
var vmAttrTypes = map[string]attr.Type{
	"vcenter_id": types.StringType, "name": types.StringType, "inventory_path": types.StringType,
	"instance_uuid": types.StringType, "moref": types.StringType, "folder": types.StringType,
	"tags": types.ListType{ElemType: types.StringType}, "power_state": types.StringType,
	"disks": types.ListType{ElemType: types.ObjectType{AttrTypes: vmDiskAttrTypes}},
}

var vmAttrDescs = map[string]string{
	"vcenter_id":     "Id of the `haven_vcenter` the VM belongs to.",
	"name":           "Name of the VM in the vCenter inventory.",
	"inventory_path": "Full inventory path of the VM, such as `/DC1/vm/prod/app-01`.",
	"instance_uuid":  "vCenter instance UUID of the VM, which stays the same when the VM is renamed or moved.",
	"moref":          "Managed object reference of the VM, such as `vm-42`.",
	"folder":         "Inventory path of the VM's folder, such as `/DC1/vm/prod`.",
	"tags":           "vSphere tags attached to the VM, as `category:tag`.",
	"power_state":    "Power state: `poweredOn`, `poweredOff` or `suspended`.",
	"disks":          "Virtual disks of the VM, in device order.",
}

// vmLookupAttributes are haven_vm's ways to name a VM, of which exactly one
// is given.
var vmLookupAttributes = []string{"name", "inventory_path", "instance_uuid", "moref"}

func newVMModel(ctx context.Context, vm *api.VM, diags *diag.Diagnostics) vmModel {
	tags, d := types.ListValueFrom(ctx, types.StringType, append([]string{}, vm.Tags...))
	diags.Append(d...)
	disks := make([]attr.Value, 0, len(vm.Disks))
	for _, k := range vm.Disks {
		o, d := types.ObjectValue(vmDiskAttrTypes, map[string]attr.Value{
			"key": types.Int64Value(int64(k.Key)), "label": types.StringValue(k.Label),
			"capacity_bytes": types.Int64Value(k.CapacityBytes),
		})
		diags.Append(d...)
		disks = append(disks, o)
	}
	diskList, d := types.ListValue(types.ObjectType{AttrTypes: vmDiskAttrTypes}, disks)
	diags.Append(d...)
	return vmModel{
		VCenterID:     types.StringValue(vm.VCenterID),
		Name:          types.StringValue(vm.Name),
		InventoryPath: types.StringValue(vm.InventoryPath),
		InstanceUUID:  types.StringValue(vm.InstanceUUID),
		MoRef:         types.StringValue(vm.MoRef),
		Folder:        types.StringValue(vm.Folder),
		Tags:          tags,
		PowerState:    types.StringValue(vm.PowerState),
		Disks:         diskList,
	}
}

// vmSchemaAttributes are a VM's computed attributes; haven_vm makes the
// lookup attributes optional on top of them.
func vmSchemaAttributes() map[string]schema.Attribute {
	out := map[string]schema.Attribute{}
	for name, t := range vmAttrTypes {
		desc := vmAttrDescs[name]
		switch name {
		case "tags":
			out[name] = schema.ListAttribute{MarkdownDescription: desc, ElementType: types.StringType, Computed: true}
		case "disks":
			out[name] = schema.ListNestedAttribute{MarkdownDescription: desc, Computed: true,
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"key":            schema.Int64Attribute{MarkdownDescription: "Device key of the disk, unique within the VM.", Computed: true},
					"label":          schema.StringAttribute{MarkdownDescription: "Label of the disk, such as `Hard disk 1`.", Computed: true},
					"capacity_bytes": schema.Int64Attribute{MarkdownDescription: "Capacity of the disk in bytes.", Computed: true},
				}}}
		default:
			if t != types.StringType {
				panic("vmSchemaAttributes: no schema for " + name)
			}
			out[name] = schema.StringAttribute{MarkdownDescription: desc, Computed: true}
		}
	}
	return out
}

func (d *vmDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vm"
}

func (d *vmDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := vmSchemaAttributes()
	attrs["vcenter_id"] = schema.StringAttribute{
		MarkdownDescription: "Id of the `haven_vcenter` to look in.",
		Required:            true,
		Validators:          []validator.String{objectID("vCenter", "haven_vcenter.prod.id")},
	}
	for _, name := range vmLookupAttributes {
		attrs[name] = schema.StringAttribute{
			MarkdownDescription: vmAttrDescs[name] + " Give exactly one of " + backquoteList(vmLookupAttributes) + ".",
			Optional:            true,
			Computed:            true,
			Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
		}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Finds one virtual machine in the inventory of a `haven_vcenter`, by name, inventory " +
			"path, instance UUID or managed object reference. Reading fails unless exactly one VM matches, so a " +
			"VM name used in several folders must be looked up by inventory path instead.",
		Attributes: attrs,
	}
}

func (d *vmDataSource) ConfigValidators(context.Context) []datasource.ConfigValidator {
	paths := make([]path.Expression, len(vmLookupAttributes))
	for i, name := range vmLookupAttributes {
		paths[i] = path.MatchRoot(name)
	}
	return []datasource.ConfigValidator{datasourcevalidator.ExactlyOneOf(paths...)}
}

func (d *vmDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *vmDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg vmModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	f := api.VMFilter{Name: cfg.Name.ValueString(), InventoryPath: cfg.InventoryPath.ValueString(),
		InstanceUUID: cfg.InstanceUUID.ValueString(), MoRef: cfg.MoRef.ValueString()}
	attrName, value := "name", f.Name
	for name, v := range map[string]string{"inventory_path": f.InventoryPath, "instance_uuid": f.InstanceUUID, "moref": f.MoRef} {
		if v != "" {
			attrName, value = name, v
		}
	}
	vcenterID := cfg.VCenterID.ValueString()
	vms, err := d.client.VMs(ctx, vcenterID, f)
	if err != nil {
		if api.IsNotFound(err) {
			resp.Diagnostics.AddAttributeError(path.Root("vcenter_id"), "No such vCenter",
				fmt.Sprintf("The Haven server has no vCenter with id %q.", vcenterID))
			return
		}
		addAPIError(&resp.Diagnostics, fmt.Sprintf("Could not list the VMs of vCenter %s", vcenterID), err, nil)
		return
	}
	switch len(vms) {
	case 0:
		resp.Diagnostics.AddAttributeError(path.Root(attrName), "No such VM",
			fmt.Sprintf("vCenter %s has no VM with %s %q.", vcenterID, attrName, value))
		return
	case 1:
	default:
		paths := make([]string, len(vms))
		for i, vm := range vms {
			paths[i] = vm.InventoryPath
		}
		resp.Diagnostics.AddAttributeError(path.Root(attrName), "Several VMs match",
			fmt.Sprintf("vCenter %s has %d VMs with %s %q: %s. Look the VM up by inventory_path, instance_uuid "+
				"or moref instead.", vcenterID, len(vms), attrName, value, strings.Join(paths, ", ")))
		return
	}
	m := newVMModel(ctx, &vms[0], &resp.Diagnostics)
	// The server matches ids and instance UUIDs regardless of case, and
	// Terraform refuses a result that differs from the configuration, so
	// what the user wrote is kept.
	m.VCenterID = cfg.VCenterID
	if !cfg.InstanceUUID.IsNull() {
		m.InstanceUUID = cfg.InstanceUUID
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
