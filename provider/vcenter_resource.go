package provider

import (
	"context"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                   = (*vcenterResource)(nil)
	_ resource.ResourceWithConfigure      = (*vcenterResource)(nil)
	_ resource.ResourceWithImportState    = (*vcenterResource)(nil)
	_ resource.ResourceWithValidateConfig = (*vcenterResource)(nil)
)

// NewVCenterResource is the haven_vcenter resource: a vCenter Server whose
// VMs Haven can back up.
func NewVCenterResource() resource.Resource {
	return &vcenterResource{}
}

type vcenterResource struct {
	client *api.Client
}

type vcenterResourceModel struct {
	ID              types.String `tfsdk:"id"`
	Version         types.Int64  `tfsdk:"version"`
	Name            types.String `tfsdk:"name"`
	URL             types.String `tfsdk:"url"`
	Username        types.String `tfsdk:"username"`
	Password        types.String `tfsdk:"password"`
	PasswordVersion types.Int64  `tfsdk:"password_version"`
	Thumbprint      types.String `tfsdk:"thumbprint"`
	CAPEM           types.String `tfsdk:"ca_pem"`
	Insecure        types.Bool   `tfsdk:"insecure"`
	Group           types.String `tfsdk:"group"`
	HasPassword     types.Bool   `tfsdk:"has_password"`
	Status          types.String `tfsdk:"status"`
	StatusMessage   types.String `tfsdk:"status_message"`
}

func (r *vcenterResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vcenter"
}

func (r *vcenterResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Registers a vCenter Server with Haven, so that its virtual machines can be backed up. " +
			"The server logs in to the vCenter whenever the registration is created or changed, so a vCenter " +
			"that exists in Terraform is known to be reachable with the given credentials. Say how to trust " +
			"the vCenter's certificate with exactly one of `thumbprint`, `ca_pem` and `insecure`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the vCenter.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write, so it gets no plan modifier.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the registration on the server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the vCenter in Haven: letters, digits, `.`, `_` and `-`, "+
					"starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"url": schema.StringAttribute{
				MarkdownDescription: "HTTPS URL of the vCenter's SDK endpoint, such as `https://vcenter.example.com/sdk`.",
				Required:            true,
				Validators:          []validator.String{vcenterFieldCheck("must be an https URL", "url", func(s *api.VCenterSpec, v string) { s.URL = v })},
			},
			"username": schema.StringAttribute{
				MarkdownDescription: "vCenter user Haven logs in as, such as `haven@vsphere.local`. It needs the " +
					"privileges to read the inventory, take snapshots and read disks.",
				Required:   true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"password": schema.StringAttribute{
				MarkdownDescription: "Password of `username`. **Write-only**: it is sent to the server, which stores it " +
					"encrypted, and is never stored in the Terraform plan or state (requires Terraform 1.11 or later). " +
					"Because Terraform cannot see changes of a write-only value, change `password_version` to send a " +
					"new password.",
				Required:   true,
				Sensitive:  true,
				WriteOnly:  true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"password_version": schema.Int64Attribute{
				MarkdownDescription: "Any number you change whenever `password` changes: a new value makes Terraform " +
					"plan an update that sends the password again.",
				Optional: true,
			},
			"thumbprint": schema.StringAttribute{
				MarkdownDescription: "SHA-256 (or SHA-1) thumbprint of the vCenter's TLS certificate, in hex with or " +
					"without colons, such as `govc about.cert -thumbprint` prints. The certificate must match it exactly.",
				Optional:   true,
				Validators: []validator.String{vcenterFieldCheck("must be a certificate thumbprint", "thumbprint", func(s *api.VCenterSpec, v string) { s.Thumbprint = v })},
			},
			"ca_pem": schema.StringAttribute{
				MarkdownDescription: "PEM-encoded certificate of the authority that signed the vCenter's TLS " +
					"certificate, such as `file(\"vcenter-ca.pem\")`.",
				Optional:   true,
				Validators: []validator.String{pemCertificates()},
			},
			"insecure": schema.BoolAttribute{
				MarkdownDescription: "Do not verify the vCenter's TLS certificate at all. Only for testing. Defaults to `false`.",
				Optional:            true,
				Computed:            true,
				Default:             booldefault.StaticBool(false),
			},
			"group": schema.StringAttribute{
				MarkdownDescription: "Administrative group of the vCenter: `group_admin` tokens of that group may " +
					"restore VMs into it (as new VMs, or disks onto protected VMs of their groups); no other group " +
					"admin may. Unset means only `admin` and `operator` tokens may.",
				Optional:   true,
				Validators: objectName(),
			},
			"has_password": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a password for this vCenter.",
				Computed:            true,
				// Every write keeps a password (the server requires one on create
				// and keeps it when none is sent), so it cannot change here.
				PlanModifiers: []planmodifier.Bool{boolplanmodifier.UseStateForUnknown()},
			},
			// status and status_message come from the login each write
			// makes, so they are unknown whenever a write is planned.
			"status": schema.StringAttribute{
				MarkdownDescription: "How the server's last login to the vCenter went: `connected` or `error`.",
				Computed:            true,
			},
			"status_message": schema.StringAttribute{
				MarkdownDescription: "What went wrong when `status` is `error`.",
				Computed:            true,
			},
		},
	}
}

func (r *vcenterResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// vcenterTrustAttributes are the ways to trust a vCenter's certificate, of
// which exactly one must be given.
var vcenterTrustAttributes = map[string]bool{"thumbprint": true, "ca_pem": true, "insecure": true}

// ValidateConfig applies the server's one-trust-setting rule at plan time.
// Fields other than the trust settings get known-good stand-ins, so that
// the rule is reported on its own, and a thumbprint in a bad format (which
// its attribute validator reports) counts as given.
func (r *vcenterResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg vcenterResourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || cfg.Thumbprint.IsUnknown() || cfg.CAPEM.IsUnknown() || cfg.Insecure.IsUnknown() {
		return
	}
	spec := api.VCenterSpec{Name: "plan-check", URL: "https://plan-check/sdk", Username: "plan-check",
		Insecure: cfg.Insecure.ValueBool()}
	if !cfg.Thumbprint.IsNull() {
		spec.Thumbprint = strings.Repeat("00", 32)
	}
	if !cfg.CAPEM.IsNull() {
		spec.CAPEM = "plan-check"
	}
	if err := spec.Validate(true); err != nil && vcenterTrustAttributes[err.Field] {
		resp.Diagnostics.AddAttributeError(path.Root(err.Field), "Invalid vCenter trust settings",
			fmt.Sprintf("Attribute %s: %s.", err.Field, err.Message))
	}
}

// vcenterFieldCheck validates one field with the server's own rules, by
// validating a registration whose other fields are known good.
func vcenterFieldCheck(desc, field string, set func(*api.VCenterSpec, string)) validator.String {
	return stringCheck{desc: desc, check: func(s string) string {
		spec := api.VCenterSpec{Name: "plan-check", URL: "https://plan-check/sdk", Username: "plan-check", Insecure: true}
		set(&spec, s)
		if field == "thumbprint" {
			spec.Insecure = false
		}
		if err := spec.Validate(true); err != nil && err.Field == field {
			return err.Message
		}
		return ""
	}}
}

// pemCertificates catches the common mistake of passing a file name
// instead of its content, which would otherwise only fail at login time.
func pemCertificates() validator.String {
	return stringCheck{desc: "must hold PEM certificates", check: func(s string) string {
		rest := []byte(s)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				return `must hold at least one PEM "CERTIFICATE" block; use file("ca.pem") to read one from a file`
			}
			if b.Type == "CERTIFICATE" {
				return ""
			}
		}
	}}
}

func (m *vcenterResourceModel) spec() api.VCenterSpec {
	return api.VCenterSpec{
		Name:       m.Name.ValueString(),
		URL:        m.URL.ValueString(),
		Username:   m.Username.ValueString(),
		Thumbprint: m.Thumbprint.ValueString(),
		CAPEM:      m.CAPEM.ValueString(),
		Insecure:   m.Insecure.ValueBool(),
		Group:      m.Group.ValueString(),
	}
}

// fill copies what the server holds into the model. The password never
// comes back and password_version is Terraform's own bookkeeping, so both
// are left alone. A thumbprint the server spells differently (case,
// colons) but that names the same certificate keeps the configured
// spelling, so that it is not reported as a change.
func (m *vcenterResourceModel) fill(v *api.VCenter) {
	m.ID = types.StringValue(v.ID)
	m.Version = types.Int64Value(v.Version)
	m.Name = types.StringValue(v.Name)
	m.URL = types.StringValue(v.URL)
	m.Username = types.StringValue(v.Username)
	if !(sameThumbprint(m.Thumbprint.ValueString(), v.Thumbprint) && isSet(m.Thumbprint)) {
		m.Thumbprint = optString(v.Thumbprint)
	}
	m.CAPEM = optString(v.CAPEM)
	m.Insecure = types.BoolValue(v.Insecure)
	m.Group = optString(v.Group)
	m.HasPassword = types.BoolValue(v.HasPassword)
	m.Status = types.StringValue(v.Status)
	m.StatusMessage = optString(v.StatusMessage)
	m.Password = types.StringNull()
}

func sameThumbprint(a, b string) bool {
	norm := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, ":", "")) }
	return norm(a) == norm(b)
}

func (m *vcenterResourceModel) secret() types.String { return m.Password }

// resendSecret is true when the user says the password changed (a new
// version), or when the account changes: the server keeps a stored
// password only for the same user on the same vCenter.
func (m *vcenterResourceModel) resendSecret(prior *vcenterResourceModel) bool {
	return !m.PasswordVersion.Equal(prior.PasswordVersion) || !m.Username.Equal(prior.Username) || !m.URL.Equal(prior.URL)
}

func (r *vcenterResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	plan, _, password := secretWrite[vcenterResourceModel](ctx, &resp.Diagnostics, req.Plan, req.Config, nil)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := plan.spec()
	spec.Password = password
	v, err := r.client.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create vCenter "+spec.Name, &plan, v, err,
		fillOnly((*vcenterResourceModel).fill))
}

func (r *vcenterResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "vCenter", func(m *vcenterResourceModel) string { return m.ID.ValueString() }, r.client.VCenters().Get,
		fillOnly((*vcenterResourceModel).fill))
}

func (r *vcenterResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	plan, state, password := secretWrite[vcenterResourceModel](ctx, &resp.Diagnostics, req.Plan, req.Config, &req.State)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := plan.spec()
	spec.Password = password
	v, err := r.client.VCenters().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.VCenterRequest{VCenterSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update vCenter "+spec.Name, &plan, v, err,
		fillOnly((*vcenterResourceModel).fill))
}

func (r *vcenterResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "vCenter", func(m *vcenterResourceModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.VCenters().Delete)
}

// ImportState takes an id or a name: the server's Get accepts both, and Read
// replaces the name with the real id. The password cannot be imported.
func (r *vcenterResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
