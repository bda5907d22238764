package provider

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                = (*protectedVMResource)(nil)
	_ resource.ResourceWithConfigure   = (*protectedVMResource)(nil)
	_ resource.ResourceWithImportState = (*protectedVMResource)(nil)
)

// NewProtectedVMResource is the haven_protected_vm resource: one VM of a
// registered vCenter, backed up under a policy into a storage.
func NewProtectedVMResource() resource.Resource {
	return &protectedVMResource{}
}

type protectedVMResource struct {
	client *api.Client
}

type protectedVMModel struct {
	ID                   types.String `tfsdk:"id"`
	Version              types.Int64  `tfsdk:"version"`
	VCenterID            types.String `tfsdk:"vcenter_id"`
	InstanceUUID         types.String `tfsdk:"instance_uuid"`
	PolicyID             types.String `tfsdk:"policy_id"`
	StorageID            types.String `tfsdk:"storage_id"`
	ExcludeDisks         types.Set    `tfsdk:"exclude_disks"`
	AppConsistent        types.Bool   `tfsdk:"app_consistent"`
	GuestUsername        types.String `tfsdk:"guest_username"`
	GuestPassword        types.String `tfsdk:"guest_password"`
	GuestPasswordVersion types.Int64  `tfsdk:"guest_password_version"`
	Group                types.String `tfsdk:"group"`
	Name                 types.String `tfsdk:"name"`
	MoRef                types.String `tfsdk:"moref"`
	Status               types.String `tfsdk:"status"`
	RuleID               types.String `tfsdk:"rule_id"`
	HasGuestPassword     types.Bool   `tfsdk:"has_guest_password"`
}

func (r *protectedVMResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_protected_vm"
}

func (r *protectedVMResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Protects one virtual machine of a `haven_vcenter`: the `haven_backup_policy` says when " +
			"it is backed up (snapshot, changed blocks since the last backup) and how long recovery points are " +
			"kept, and the `haven_storage` holds them. The VM is named by its instance UUID, which survives " +
			"renames and moves; the `haven_vm` data source finds it by name or path. The server checks that the " +
			"VM exists whenever the protection is created or changed. A VM is protected at most once, whether " +
			"here or by a `haven_vm_protection_rule`. Destroying the protection stops the VM's backups; its " +
			"recovery points stay listed under the VM's name and restorable (into any registered vCenter) " +
			"until the retention of the policy it was under expires them.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the protection; recovery points and jobs name it as their asset.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write: no UseStateForUnknown.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the protection on the server; it increases by one on every change.",
				Computed:            true,
			},
			"vcenter_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_vcenter` the VM belongs to. Changing it replaces the protection.",
				Required:            true,
				Validators:          []validator.String{objectID("vCenter", "haven_vcenter.prod.id")},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"instance_uuid": schema.StringAttribute{
				MarkdownDescription: "Instance UUID (`config.instanceUuid`) of the VM, in lower case, such as " +
					"`data.haven_vm.db.instance_uuid`. Changing it replaces the protection: recovery points " +
					"belong to one VM.",
				Required:      true,
				Validators:    []validator.String{instanceUUID()},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"policy_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_backup_policy` that schedules and retains the backups.",
				Required:            true,
				Validators:          []validator.String{objectID("backup policy", "haven_backup_policy.gold.id")},
			},
			"storage_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_storage` that holds the recovery points.",
				Required:            true,
				Validators:          []validator.String{objectID("storage", "haven_storage.local.id")},
			},
			"exclude_disks": schema.SetAttribute{
				MarkdownDescription: "Device keys of virtual disks not to back up (`2000`, `2001`, ... on vSphere), as the " +
					"`disks` of the `haven_vm` data source list them. The VM must have each of them, and at least " +
					"one disk must stay included. Defaults to none.",
				ElementType: types.Int64Type,
				Optional:    true,
				// The server does not tell an empty set from no set, so both
				// are planned as the empty set it reads back.
				Computed:   true,
				Default:    setdefault.StaticValue(types.SetValueMust(types.Int64Type, []attr.Value{})),
				Validators: []validator.Set{setvalidator.ValueInt64sAre(diskKey())},
			},
			"app_consistent": schema.BoolAttribute{
				MarkdownDescription: "Quiesce the guest through VMware Tools for application-consistent snapshots, " +
					"overriding the policy's `app_consistent`. Unset means the policy decides.",
				Optional: true,
			},
			"guest_username": schema.StringAttribute{
				MarkdownDescription: "Guest OS account that runs the policy's pre-freeze and post-thaw scripts " +
					"through VMware Tools, such as `root` or `Administrator`.",
				Optional:   true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"guest_password": schema.StringAttribute{
				MarkdownDescription: "Password of `guest_username`. **Write-only**: it is sent to the server, which " +
					"stores it encrypted, and is never stored in the Terraform plan or state (requires Terraform " +
					"1.11 or later). Because Terraform cannot see changes of a write-only value, change " +
					"`guest_password_version` to send a new password. It is also sent again when `guest_username` " +
					"changes; a new user without a password leaves none stored.",
				Optional:  true,
				Sensitive: true,
				WriteOnly: true,
				Validators: []validator.String{
					stringvalidator.LengthAtLeast(1),
					stringvalidator.AlsoRequires(path.MatchRoot("guest_username")),
				},
			},
			"guest_password_version": schema.Int64Attribute{
				MarkdownDescription: "Any number you change whenever `guest_password` changes: a new value makes " +
					"Terraform plan an update that sends the password again.",
				Optional: true,
			},
			"group": schema.StringAttribute{
				MarkdownDescription: "Administrative group of the protection: `group_admin` tokens of that group " +
					"may manage it and run its backups and restores. Unset means only `admin` and `operator` tokens may.",
				Optional:   true,
				Validators: objectName(),
			},
			// name, moref and status are the server's reading of the
			// inventory at the last write, so a planned write makes them
			// unknown.
			"name": schema.StringAttribute{
				MarkdownDescription: "Name of the VM in the vCenter inventory, as the server last saw it.",
				Computed:            true,
			},
			"moref": schema.StringAttribute{
				MarkdownDescription: "Managed object id of the VM (such as `vm-42`), as the server last saw it.",
				Computed:            true,
			},
			"status": schema.StringAttribute{
				MarkdownDescription: "`active` (backed up on the policy's schedule), `unselected` (a rule protected " +
					"it and no longer selects it) or `missing` (the VM left the inventory).",
				Computed: true,
			},
			"rule_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_vm_protection_rule` that created the protection, if one did. " +
					"Importing such a protection and changing it takes it over from the rule: `rule_id` becomes " +
					"null and the rule no longer manages it. While the rule still selects the VM, the server refuses " +
					"to delete its protection; exclude the VM from the rule instead.",
				Computed: true,
			},
			"has_guest_password": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a guest password for this VM.",
				Computed:            true,
				PlanModifiers:       []planmodifier.Bool{guestPasswordPlan{}},
			},
		},
	}
}

func (r *protectedVMResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// instanceUUID applies the server's UUID rule, and asks for lower case:
// the server stores lower case, so an upper-case value would read back
// different and force a replacement.
func instanceUUID() validator.String {
	return stringCheck{desc: "must be a VM instance UUID in lower case", check: func(s string) string {
		spec := api.ProtectedVMSpec{VCenterID: "v", PolicyID: "p", StorageID: "s", InstanceUUID: s}
		if err := spec.Validate(); err != nil && err.Field == "instance_uuid" {
			return fmt.Sprintf("must be a VM instance UUID (config.instanceUuid, such as data.haven_vm.db.instance_uuid), got %q", s)
		}
		if low := strings.ToLower(s); low != s {
			return fmt.Sprintf("must be in lower case, as the vCenter writes it: use %q", low)
		}
		return ""
	}}
}

// diskKey is the server's rule for excluded disks, applied per key; keys
// travel as 32-bit numbers.
type diskKeyCheck struct{}

func diskKey() validator.Int64 { return diskKeyCheck{} }

func (diskKeyCheck) Description(context.Context) string {
	return "must be a virtual disk's device key"
}

func (v diskKeyCheck) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (diskKeyCheck) ValidateInt64(_ context.Context, req validator.Int64Request, resp *validator.Int64Response) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	k := req.ConfigValue.ValueInt64()
	if k <= 0 || k > math.MaxInt32 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid exclude_disks",
			fmt.Sprintf("Attribute exclude_disks must hold virtual disks' device keys (such as 2000, as the disks of the haven_vm data source list them), got %d.", k))
	}
}

// guestPasswordPlan predicts has_guest_password: it changes only when a
// write sends a password or names another user, which is when Update sends
// the password too.
type guestPasswordPlan struct{}

func (guestPasswordPlan) Description(context.Context) string {
	return "unchanged unless guest_username or guest_password_version change"
}

func (m guestPasswordPlan) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (guestPasswordPlan) PlanModifyBool(ctx context.Context, req planmodifier.BoolRequest, resp *planmodifier.BoolResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var user, priorUser, password types.String
	var version, priorVersion types.Int64
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("guest_username"), &user)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("guest_password_version"), &version)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("guest_password"), &password)...)
	creating := req.State.Raw.IsNull()
	if !creating {
		resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("guest_username"), &priorUser)...)
		resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("guest_password_version"), &priorVersion)...)
	}
	if resp.Diagnostics.HasError() || user.IsUnknown() || version.IsUnknown() || password.IsUnknown() {
		return
	}
	sends := creating || !user.Equal(priorUser) || !version.Equal(priorVersion)
	switch {
	case !sends:
		resp.PlanValue = req.StateValue
	case !password.IsNull():
		resp.PlanValue = types.BoolValue(true)
	case user.IsNull() || creating || !user.Equal(priorUser):
		resp.PlanValue = types.BoolValue(false)
	default:
		// A new version without a password: the server keeps the one it holds.
		resp.PlanValue = req.StateValue
	}
}

func (m *protectedVMModel) spec(ctx context.Context, diags *diag.Diagnostics) api.ProtectedVMSpec {
	s := api.ProtectedVMSpec{
		VCenterID:     m.VCenterID.ValueString(),
		InstanceUUID:  m.InstanceUUID.ValueString(),
		PolicyID:      m.PolicyID.ValueString(),
		StorageID:     m.StorageID.ValueString(),
		GuestUsername: m.GuestUsername.ValueString(),
		Group:         m.Group.ValueString(),
	}
	if !m.AppConsistent.IsNull() {
		s.AppConsistent = m.AppConsistent.ValueBoolPointer()
	}
	if !m.ExcludeDisks.IsNull() {
		var keys []int64
		diags.Append(m.ExcludeDisks.ElementsAs(ctx, &keys, false)...)
		for _, k := range keys {
			s.ExcludeDisks = append(s.ExcludeDisks, int32(k))
		}
	}
	return s
}

// fill copies what the server holds into the model. The password never
// comes back and guest_password_version is Terraform's own bookkeeping, so
// both are left alone.
func (m *protectedVMModel) fill(p *api.ProtectedVM) {
	m.ID = types.StringValue(p.ID)
	m.Version = types.Int64Value(p.Version)
	m.VCenterID = types.StringValue(p.VCenterID)
	m.InstanceUUID = types.StringValue(p.InstanceUUID)
	m.PolicyID = types.StringValue(p.PolicyID)
	m.StorageID = types.StringValue(p.StorageID)
	keys := make([]attr.Value, len(p.ExcludeDisks))
	for i, k := range p.ExcludeDisks {
		keys[i] = types.Int64Value(int64(k))
	}
	m.ExcludeDisks = types.SetValueMust(types.Int64Type, keys)
	m.AppConsistent = types.BoolPointerValue(p.AppConsistent)
	m.GuestUsername = optString(p.GuestUsername)
	m.Group = optString(p.Group)
	m.Name = types.StringValue(p.Name)
	m.MoRef = optString(p.MoRef)
	m.Status = types.StringValue(p.Status)
	m.RuleID = optString(p.RuleID)
	m.HasGuestPassword = types.BoolValue(p.HasGuestPassword)
	m.GuestPassword = types.StringNull()
}

func (m *protectedVMModel) secret() types.String { return m.GuestPassword }

// resendSecret is true, as for haven_vcenter, when the user says the
// password changed (a new version) or the account changes.
func (m *protectedVMModel) resendSecret(prior *protectedVMModel) bool {
	return !m.GuestPasswordVersion.Equal(prior.GuestPasswordVersion) || !m.GuestUsername.Equal(prior.GuestUsername)
}

func (r *protectedVMResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	plan, _, password := secretWrite[protectedVMModel](ctx, &resp.Diagnostics, req.Plan, req.Config, nil)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	spec.GuestPassword = password
	p, err := r.client.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not protect VM "+spec.InstanceUUID, &plan, p, err,
		fillOnly((*protectedVMModel).fill))
}

func (r *protectedVMResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "protected VM", func(m *protectedVMModel) string { return m.ID.ValueString() }, r.client.ProtectedVMs().Get,
		fillOnly((*protectedVMModel).fill))
}

func (r *protectedVMResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	plan, state, password := secretWrite[protectedVMModel](ctx, &resp.Diagnostics, req.Plan, req.Config, &req.State)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	spec.GuestPassword = password
	p, err := r.client.ProtectedVMs().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.ProtectedVMRequest{ProtectedVMSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update protected VM "+state.Name.ValueString(), &plan, p, err,
		fillOnly((*protectedVMModel).fill))
}

func (r *protectedVMResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "protected VM", func(m *protectedVMModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.ProtectedVMs().Delete)
}

// ImportState takes the id, or "<vcenter id>/<instance uuid>" (the name the
// server stores a protection under): Read replaces it with the real id.
// Both halves are UUIDs the server keeps in lower case, so the import id is
// folded to match however it was copied. The guest password cannot be
// imported.
func (r *protectedVMResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), strings.ToLower(req.ID))...)
}
