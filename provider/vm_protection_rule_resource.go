package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/defaults"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                   = (*vmProtectionRuleResource)(nil)
	_ resource.ResourceWithConfigure      = (*vmProtectionRuleResource)(nil)
	_ resource.ResourceWithImportState    = (*vmProtectionRuleResource)(nil)
	_ resource.ResourceWithValidateConfig = (*vmProtectionRuleResource)(nil)
)

// NewVMProtectionRuleResource is the haven_vm_protection_rule resource: VMs
// of a vCenter selected by folder, tag or name, protected as they come and go.
func NewVMProtectionRuleResource() resource.Resource {
	return &vmProtectionRuleResource{}
}

type vmProtectionRuleResource struct {
	client *api.Client
}

type vmProtectionRuleModel struct {
	ID                   types.String `tfsdk:"id"`
	Version              types.Int64  `tfsdk:"version"`
	Name                 types.String `tfsdk:"name"`
	VCenterID            types.String `tfsdk:"vcenter_id"`
	Folders              types.Set    `tfsdk:"folders"`
	Tags                 types.Set    `tfsdk:"tags"`
	NameRegex            types.String `tfsdk:"name_regex"`
	ExcludeNameRegex     types.String `tfsdk:"exclude_name_regex"`
	ExcludeInstanceUUIDs types.Set    `tfsdk:"exclude_instance_uuids"`
	PolicyID             types.String `tfsdk:"policy_id"`
	StorageID            types.String `tfsdk:"storage_id"`
	Group                types.String `tfsdk:"group"`
	SelectedCount        types.Int64  `tfsdk:"selected_count"`
}

func (r *vmProtectionRuleResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vm_protection_rule"
}

func emptyStringSet() defaults.Set {
	return setdefault.StaticValue(types.SetValueMust(types.StringType, []attr.Value{}))
}

func (r *vmProtectionRuleResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Protects the VMs of a `haven_vcenter` that a rule selects, including VMs created " +
			"later: the server re-evaluates the rule against the inventory and protects each selected VM under " +
			"the rule's policy and storage, as if by a `haven_protected_vm`. A VM is selected when it matches " +
			"every selector given (any of `folders`, any of `tags`, `name_regex`) and no exclusion. A VM " +
			"already protected on its own keeps that protection. A VM the rule stops selecting is no longer " +
			"backed up, and its recovery points live out their retention. Destroying the rule deletes the " +
			"protections it made at once (their recovery points stay listed and restorable until their " +
			"retention ends), so that the rule's policy, storage and vCenter can be destroyed after it. An edit of one of the rule's " +
			"protections, through an imported `haven_protected_vm`, takes it over from the rule.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the rule.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write: no UseStateForUnknown.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the rule on the server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the rule: letters, digits, `.`, `_` and `-`, "+
					"starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"vcenter_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_vcenter` whose VMs the rule selects.",
				Required:            true,
				Validators:          []validator.String{objectID("vCenter", "haven_vcenter.prod.id")},
			},
			"folders": schema.SetAttribute{
				MarkdownDescription: "Inventory paths of VM folders, such as `/DC1/vm/prod`: a VM in one of them, " +
					"or in a folder below, matches.",
				ElementType: types.StringType,
				Optional:    true,
				// The server does not tell an empty set from no set, so both
				// are planned as the empty set it reads back.
				Computed:   true,
				Default:    emptyStringSet(),
				Validators: []validator.Set{setvalidator.ValueStringsAre(inventoryPath())},
			},
			"tags": schema.SetAttribute{
				MarkdownDescription: "vSphere tags written `category:tag`, such as `backup:gold`: a VM carrying any of them matches.",
				ElementType:         types.StringType,
				Optional:            true,
				Computed:            true,
				Default:             emptyStringSet(),
				Validators:          []validator.Set{setvalidator.ValueStringsAre(categoryTag())},
			},
			"name_regex": schema.StringAttribute{
				MarkdownDescription: "Regular expression (RE2 syntax, unanchored) a VM's name must match, such as `^db-`.",
				Optional:            true,
				Validators:          []validator.String{stringvalidator.LengthAtLeast(1), ruleRegex("name_regex")},
			},
			"exclude_name_regex": schema.StringAttribute{
				MarkdownDescription: "Regular expression (RE2 syntax, unanchored) of VM names to leave out, such as `-(test|tmp)$`.",
				Optional:            true,
				Validators:          []validator.String{stringvalidator.LengthAtLeast(1), ruleRegex("exclude_name_regex")},
			},
			"exclude_instance_uuids": schema.SetAttribute{
				MarkdownDescription: "Instance UUIDs (lower case) of VMs to leave out even when they match.",
				ElementType:         types.StringType,
				Optional:            true,
				Computed:            true,
				Default:             emptyStringSet(),
				Validators:          []validator.Set{setvalidator.ValueStringsAre(instanceUUID())},
			},
			"policy_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_backup_policy` the selected VMs are backed up under.",
				Required:            true,
				Validators:          []validator.String{objectID("backup policy", "haven_backup_policy.gold.id")},
			},
			"storage_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_storage` that holds the selected VMs' recovery points.",
				Required:            true,
				Validators:          []validator.String{objectID("storage", "haven_storage.local.id")},
			},
			"group": schema.StringAttribute{
				MarkdownDescription: "Administrative group of the rule and of the protections it creates: " +
					"`group_admin` tokens of that group may manage them. Unset means only `admin` and `operator` tokens may.",
				Optional:   true,
				Validators: objectName(),
			},
			// The server's reconciler updates it between Terraform runs;
			// it never causes a plan of its own.
			"selected_count": schema.Int64Attribute{
				MarkdownDescription: "How many VMs the rule protected when the server last evaluated it (0 until then).",
				Computed:            true,
			},
		},
	}
}

func (r *vmProtectionRuleResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig applies the server's at-least-one-selector rule at plan
// time; a rule selecting every VM of a vCenter must say so with a regex.
func (r *vmProtectionRuleResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg vmProtectionRuleModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || cfg.Folders.IsUnknown() || cfg.Tags.IsUnknown() || cfg.NameRegex.IsUnknown() {
		return
	}
	if len(cfg.Folders.Elements()) == 0 && len(cfg.Tags.Elements()) == 0 && cfg.NameRegex.IsNull() {
		resp.Diagnostics.AddAttributeError(path.Root("folders"), "VM protection rule selects nothing",
			"Attribute folders: give at least one selector: folders, tags or name_regex (name_regex = \".\" selects every VM).")
	}
}

// ruleFieldCheck validates one field with the server's own rules, by
// validating a rule whose other fields are known good.
func ruleFieldCheck(desc, field string, set func(*api.VMProtectionRuleSpec, string)) validator.String {
	return stringCheck{desc: desc, check: func(s string) string {
		spec := api.VMProtectionRuleSpec{Name: "plan-check", VCenterID: "v", PolicyID: "p", StorageID: "s", NameRegex: "."}
		set(&spec, s)
		if err := spec.Validate(); err != nil && (err.Field == field || strings.HasPrefix(err.Field, field+"[")) {
			return err.Message
		}
		return ""
	}}
}

func inventoryPath() validator.String {
	return ruleFieldCheck("must be an inventory path such as /DC1/vm/prod", "folders",
		func(r *api.VMProtectionRuleSpec, v string) { r.Folders = []string{v} })
}

func categoryTag() validator.String {
	return ruleFieldCheck("must be written category:tag", "tags",
		func(r *api.VMProtectionRuleSpec, v string) { r.Tags = []string{v} })
}

func ruleRegex(field string) validator.String {
	return ruleFieldCheck("must be a valid regular expression", field, func(r *api.VMProtectionRuleSpec, v string) {
		if field == "name_regex" {
			r.NameRegex = v
		} else {
			r.ExcludeNameRegex = v
		}
	})
}

func (m *vmProtectionRuleModel) spec(ctx context.Context, diags *diag.Diagnostics) api.VMProtectionRuleSpec {
	s := api.VMProtectionRuleSpec{
		Name:             m.Name.ValueString(),
		VCenterID:        m.VCenterID.ValueString(),
		NameRegex:        m.NameRegex.ValueString(),
		ExcludeNameRegex: m.ExcludeNameRegex.ValueString(),
		PolicyID:         m.PolicyID.ValueString(),
		StorageID:        m.StorageID.ValueString(),
		Group:            m.Group.ValueString(),
	}
	for _, set := range []struct {
		from types.Set
		into *[]string
	}{{m.Folders, &s.Folders}, {m.Tags, &s.Tags}, {m.ExcludeInstanceUUIDs, &s.ExcludeInstanceUUIDs}} {
		if !set.from.IsNull() && !set.from.IsUnknown() {
			diags.Append(set.from.ElementsAs(ctx, set.into, false)...)
		}
	}
	return s
}

func stringSet(items []string) types.Set {
	elems := make([]attr.Value, len(items))
	for i, s := range items {
		elems[i] = types.StringValue(s)
	}
	return types.SetValueMust(types.StringType, elems)
}

func (m *vmProtectionRuleModel) fill(r *api.VMProtectionRule) {
	m.ID = types.StringValue(r.ID)
	m.Version = types.Int64Value(r.Version)
	m.Name = types.StringValue(r.Name)
	m.VCenterID = types.StringValue(r.VCenterID)
	m.Folders = stringSet(r.Folders)
	m.Tags = stringSet(r.Tags)
	m.NameRegex = optString(r.NameRegex)
	m.ExcludeNameRegex = optString(r.ExcludeNameRegex)
	m.ExcludeInstanceUUIDs = stringSet(r.ExcludeInstanceUUIDs)
	m.PolicyID = types.StringValue(r.PolicyID)
	m.StorageID = types.StringValue(r.StorageID)
	m.Group = optString(r.Group)
	m.SelectedCount = types.Int64Value(int64(r.SelectedCount))
}

func (r *vmProtectionRuleResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan vmProtectionRuleModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	o, err := r.client.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create VM protection rule "+spec.Name, &plan, o, err,
		fillOnly((*vmProtectionRuleModel).fill))
}

func (r *vmProtectionRuleResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "VM protection rule", func(m *vmProtectionRuleModel) string { return m.ID.ValueString() },
		r.client.VMProtectionRules().Get,
		fillOnly((*vmProtectionRuleModel).fill))
}

func (r *vmProtectionRuleResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state vmProtectionRuleModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	o, err := r.client.VMProtectionRules().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.VMProtectionRuleRequest{VMProtectionRuleSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update VM protection rule "+spec.Name, &plan, o, err,
		fillOnly((*vmProtectionRuleModel).fill))
}

func (r *vmProtectionRuleResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "VM protection rule", func(m *vmProtectionRuleModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.VMProtectionRules().Delete)
}

// ImportState takes an id or a name: the server's Get accepts both, and Read
// replaces the name with the real id.
func (r *vmProtectionRuleResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
