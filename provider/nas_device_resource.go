package provider

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                   = (*nasDeviceResource)(nil)
	_ resource.ResourceWithConfigure      = (*nasDeviceResource)(nil)
	_ resource.ResourceWithImportState    = (*nasDeviceResource)(nil)
	_ resource.ResourceWithValidateConfig = (*nasDeviceResource)(nil)
)

// NewNASDeviceResource is the haven_nas_device resource: a NAS whose
// shares Haven protects over SMB or NFS, through NAS proxies.
func NewNASDeviceResource() resource.Resource {
	return &nasDeviceResource{}
}

type nasDeviceResource struct {
	client *api.Client
}

type nasDeviceResourceModel struct {
	ID                    types.String `tfsdk:"id"`
	Version               types.Int64  `tfsdk:"version"`
	Name                  types.String `tfsdk:"name"`
	Host                  types.String `tfsdk:"host"`
	Protocols             types.Set    `tfsdk:"protocols"`
	SMBUser               types.String `tfsdk:"smb_user"`
	SMBDomain             types.String `tfsdk:"smb_domain"`
	SMBPassword           types.String `tfsdk:"smb_password"`
	SMBKerberosKeytab     types.String `tfsdk:"smb_kerberos_keytab"`
	SMBCredentialsVersion types.Int64  `tfsdk:"smb_credentials_version"`
	NFSUID                types.Int64  `tfsdk:"nfs_uid"`
	NFSGID                types.Int64  `tfsdk:"nfs_gid"`
	NFSPort               types.Int64  `tfsdk:"nfs_port"`
	NFSMountPort          types.Int64  `tfsdk:"nfs_mount_port"`
	ProxyFileServerIDs    types.Set    `tfsdk:"proxy_file_server_ids"`
	Group                 types.String `tfsdk:"group"`
	HasSMBPassword        types.Bool   `tfsdk:"has_smb_password"`
	HasSMBKeytab          types.Bool   `tfsdk:"has_smb_keytab"`
}

// Descriptions shared by the resource and data source schemas.
const (
	descNASDeviceHost = "Host name or IP address of the NAS, optionally with the port of its SMB service " +
		"(`nas01.example.com:1445`, `[2001:db8::5]:445`); SMB's default port is 445. The NAS proxies connect to it."
	descNASDeviceProtocols = "Protocols the NAS serves the shares Haven protects over: `smb`, `nfs`, or both."
	descNASDeviceProxies   = "Ids of the `haven_file_server`s (of location `agent`) whose Haven agents act as the NAS " +
		"proxies of this device: they connect to the NAS over SMB or NFS themselves, without mounting anything, and " +
		"move the data between the NAS and the Haven server. While a NAS device names a file server, the server " +
		"refuses to delete the file server."
	descNASDeviceGroup = "Administrative group of the NAS device: `group_admin` tokens of that group may keep " +
		"`haven_nas_share`s of it (which take this group) and restore onto them."
	descNASDeviceNFSID = "AUTH_UNIX %s id the NAS proxies present to the NFS server. The export must give it read " +
		"access to everything backed up (and write access for restores), for example through `no_root_squash` " +
		"for the default, 0 (root)."
	descNASDeviceNFSPort = "Port of the NAS's %s service. Unset asks the NAS's portmapper (port 111), which is " +
		"what NFS servers on standard ports need."
)

func (r *nasDeviceResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_nas_device"
}

func (r *nasDeviceResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A NAS device: a file server appliance that serves shares over SMB, NFS or both, " +
			"declared so that `haven_nas_share`s can protect its shares. Haven reaches it through NAS proxies: " +
			"the `haven agent`s of one or more `haven_file_server`s of location `agent` " +
			"(`proxy_file_server_ids`), which sign in to the NAS as `smb_user` (SMB) or present " +
			"`nfs_uid`/`nfs_gid` (NFS). This resource is the configuration of NAS protection: what to back up " +
			"of the device, when and where is a `haven_nas_share`. Destroying a NAS device is refused while a " +
			"NAS share uses it.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the NAS device.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write: no UseStateForUnknown.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the NAS device on the Haven server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the NAS device in Haven: letters, digits, `.`, `_` "+
					"and `-`, starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"host": schema.StringAttribute{
				MarkdownDescription: descNASDeviceHost + " A port is only allowed when `protocols` includes `smb`.",
				Required:            true,
			},
			"protocols": schema.SetAttribute{
				MarkdownDescription: descNASDeviceProtocols + " A `haven_nas_share` uses one of them.",
				ElementType:         types.StringType,
				Required:            true,
				Validators: []validator.Set{setvalidator.SizeAtLeast(1),
					setvalidator.ValueStringsAre(stringvalidator.OneOf(api.ProtocolSMB, api.ProtocolNFS))},
			},
			"smb_user": schema.StringAttribute{
				MarkdownDescription: "SMB: the account the NAS proxies sign in as, without its domain. Required when " +
					"`protocols` includes `smb`. It needs to read everything backed up, security descriptors " +
					"included (a member of Backup Operators, say), and to write for restores.",
				Optional: true,
			},
			"smb_domain": schema.StringAttribute{
				MarkdownDescription: "SMB: the domain of `smb_user` (such as `CORP`), or its Kerberos realm with " +
					"`smb_kerberos_keytab`. Unset for an account of the NAS itself.",
				Optional: true,
			},
			"smb_password": schema.StringAttribute{
				MarkdownDescription: "SMB: the password of `smb_user`. Give it or `smb_kerberos_keytab` (not both) " +
					"when `protocols` includes `smb`. **Write-only**: it is sent to the server, which stores it " +
					"encrypted and hands it only to the NAS proxies with their jobs, and is never stored in the " +
					"Terraform plan or state (requires Terraform 1.11 or later). Because Terraform cannot see " +
					"changes of a write-only value, change `smb_credentials_version` to send a new one. It is also " +
					"sent again when `smb_user`, `smb_domain` or `protocols` change. The server keeps what it holds " +
					"when nothing is sent (`has_smb_password` says whether it holds a password).",
				Optional:   true,
				Sensitive:  true,
				WriteOnly:  true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"smb_kerberos_keytab": schema.StringAttribute{
				MarkdownDescription: "SMB: a Kerberos keytab of `smb_user`, base64-encoded (such as " +
					"`filebase64(\"nas-backup.keytab\")`), instead of `smb_password`. **Write-only**, sent as " +
					"`smb_password` is and never stored in the plan or state (`has_smb_keytab` says whether the " +
					"server holds one).",
				Optional:  true,
				Sensitive: true,
				WriteOnly: true,
			},
			"smb_credentials_version": schema.Int64Attribute{
				MarkdownDescription: "Any number you change whenever `smb_password` or `smb_kerberos_keytab` " +
					"changes: a new value makes Terraform plan an update that sends it again.",
				Optional: true,
			},
			"nfs_uid": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf(descNASDeviceNFSID, "user") + " Defaults to 0; only `nfs` devices take another.",
				Optional:            true,
				Computed:            true,
				Default:             int64default.StaticInt64(0),
			},
			"nfs_gid": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf(descNASDeviceNFSID, "group") + " Defaults to 0; only `nfs` devices take another.",
				Optional:            true,
				Computed:            true,
				Default:             int64default.StaticInt64(0),
			},
			"nfs_port": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf(descNASDeviceNFSPort, "NFS"),
				Optional:            true,
			},
			"nfs_mount_port": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf(descNASDeviceNFSPort, "MOUNT"),
				Optional:            true,
			},
			"proxy_file_server_ids": schema.SetAttribute{
				MarkdownDescription: descNASDeviceProxies,
				ElementType:         types.StringType,
				Required:            true,
				Validators: []validator.Set{setvalidator.SizeAtLeast(1),
					setvalidator.ValueStringsAre(objectID("file server", "haven_file_server.proxy.id"))},
			},
			"group": schema.StringAttribute{
				MarkdownDescription: descNASDeviceGroup + " Unset means only `admin` and `operator` tokens may.",
				Optional:            true,
				Validators:          objectName(),
			},
			"has_smb_password": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds an SMB password for this NAS device.",
				Computed:            true,
				PlanModifiers:       []planmodifier.Bool{nasSecretPlan{"smb_password"}},
			},
			"has_smb_keytab": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a Kerberos keytab for this NAS device.",
				Computed:            true,
				PlanModifiers:       []planmodifier.Bool{nasSecretPlan{"smb_kerberos_keytab"}},
			},
		},
	}
}

func (r *nasDeviceResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// nasDeviceChecked are the attributes whose rules span several attributes
// (a port in host only with smb, smb_user required with it, NFS settings
// only with nfs), which ValidateConfig checks with the server's own rules.
var nasDeviceChecked = []string{"host", "smb_user", "smb_domain", "smb_password", "smb_kerberos_keytab",
	"nfs_uid", "nfs_gid", "nfs_port", "nfs_mount_port"}

// ValidateConfig applies the server's rules to the configuration at plan
// time, with stand-ins for what other attributes validate themselves (the
// name, the group, the proxies' ids).
func (r *nasDeviceResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m nasDeviceResourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for _, v := range []interface{ IsUnknown() bool }{m.Host, m.Protocols, m.SMBUser, m.SMBDomain, m.SMBPassword,
		m.SMBKerberosKeytab, m.NFSUID, m.NFSGID, m.NFSPort, m.NFSMountPort} {
		if v.IsUnknown() {
			return
		}
	}
	var protocols []string
	if !m.Protocols.IsNull() {
		if diags := m.Protocols.ElementsAs(ctx, &protocols, false); diags.HasError() {
			return // an unknown element
		}
	}
	spec := api.NASDeviceSpec{Name: "plan-check", Host: m.Host.ValueString(), Protocols: protocols,
		SMBUser: m.SMBUser.ValueString(), SMBDomain: m.SMBDomain.ValueString(), SMBPassword: m.SMBPassword.ValueString(),
		SMBKerberosKeytab: m.SMBKerberosKeytab.ValueString(), NFSUID: m.NFSUID.ValueInt64(), NFSGID: m.NFSGID.ValueInt64(),
		NFSPort: int(m.NFSPort.ValueInt64()), NFSMountPort: int(m.NFSMountPort.ValueInt64()), ProxyFileServerIDs: []string{"plan-check"}}
	// Ports are 1-65535 when given: 0 is the API's "unset".
	for _, p := range []struct {
		field string
		v     types.Int64
	}{{"nfs_port", m.NFSPort}, {"nfs_mount_port", m.NFSMountPort}} {
		if !p.v.IsNull() && (p.v.ValueInt64() < 1 || p.v.ValueInt64() > 65535) {
			resp.Diagnostics.AddAttributeError(path.Root(p.field), "Invalid "+p.field,
				fmt.Sprintf("Attribute %s must be between 1 and 65535, got %d.", p.field, p.v.ValueInt64()))
			return
		}
	}
	if err := spec.Validate(); err != nil && slices.Contains(nasDeviceChecked, err.Field) {
		resp.Diagnostics.AddAttributeError(path.Root(err.Field), "Invalid "+err.Field,
			fmt.Sprintf("Attribute %s %s.", err.Field, strings.TrimSuffix(err.Message, ".")))
	}
}

// nasSecretPlan predicts has_smb_password (secret smb_password) and
// has_smb_keytab (smb_kerberos_keytab): a write that sends a secret
// replaces what the server holds with it; one that sends none keeps it;
// a device without smb holds none. A write sends the configured secret
// on create, and when smb_credentials_version, smb_user, smb_domain or
// protocols change (resendSecret).
type nasSecretPlan struct{ secret string }

func (m nasSecretPlan) Description(context.Context) string {
	return "unchanged unless an SMB secret is sent (on create, or when smb_credentials_version, smb_user, " +
		"smb_domain or protocols change), or protocols leave out smb"
}

func (m nasSecretPlan) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (m nasSecretPlan) PlanModifyBool(ctx context.Context, req planmodifier.BoolRequest, resp *planmodifier.BoolResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var plan, prior nasDeviceResourceModel
	var password, keytab types.String
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("smb_password"), &password)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("smb_kerberos_keytab"), &keytab)...)
	creating := req.State.Raw.IsNull()
	if !creating {
		resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	}
	if resp.Diagnostics.HasError() || plan.Protocols.IsUnknown() || plan.SMBUser.IsUnknown() || plan.SMBDomain.IsUnknown() ||
		plan.SMBCredentialsVersion.IsUnknown() || password.IsUnknown() || keytab.IsUnknown() {
		return
	}
	if !plan.Protocols.IsNull() && !slices.ContainsFunc(plan.Protocols.Elements(), func(v attr.Value) bool {
		s, ok := v.(types.String)
		return ok && s.ValueString() == api.ProtocolSMB
	}) {
		resp.PlanValue = types.BoolValue(false)
		return
	}
	mine := password
	if m.secret == "smb_kerberos_keytab" {
		mine = keytab
	}
	sends := creating || plan.resendSecret(&prior)
	switch {
	case sends && (!password.IsNull() || !keytab.IsNull()):
		resp.PlanValue = types.BoolValue(!mine.IsNull())
	case creating:
		resp.PlanValue = types.BoolValue(false)
	default:
		// Nothing sent: the server keeps what it holds.
		resp.PlanValue = req.StateValue
	}
}

func (m *nasDeviceResourceModel) spec(ctx context.Context, diags *diag.Diagnostics) api.NASDeviceSpec {
	s := api.NASDeviceSpec{
		Name:         m.Name.ValueString(),
		Host:         m.Host.ValueString(),
		SMBUser:      m.SMBUser.ValueString(),
		SMBDomain:    m.SMBDomain.ValueString(),
		NFSUID:       m.NFSUID.ValueInt64(),
		NFSGID:       m.NFSGID.ValueInt64(),
		NFSPort:      int(m.NFSPort.ValueInt64()),
		NFSMountPort: int(m.NFSMountPort.ValueInt64()),
		Group:        m.Group.ValueString(),
	}
	diags.Append(m.Protocols.ElementsAs(ctx, &s.Protocols, false)...)
	diags.Append(m.ProxyFileServerIDs.ElementsAs(ctx, &s.ProxyFileServerIDs, false)...)
	return s
}

// fill copies what the server holds into the model. The secrets never
// come back and smb_credentials_version is Terraform's own bookkeeping,
// so they are left alone.
func (m *nasDeviceResourceModel) fill(d *api.NASDevice) {
	m.ID = types.StringValue(d.ID)
	m.Version = types.Int64Value(d.Version)
	m.Name = types.StringValue(d.Name)
	m.Host = types.StringValue(d.Host)
	m.Protocols = stringSet(d.Protocols)
	m.SMBUser = optString(d.SMBUser)
	m.SMBDomain = optString(d.SMBDomain)
	m.NFSUID = types.Int64Value(d.NFSUID)
	m.NFSGID = types.Int64Value(d.NFSGID)
	m.NFSPort = optPort(d.NFSPort)
	m.NFSMountPort = optPort(d.NFSMountPort)
	m.ProxyFileServerIDs = stringSet(d.ProxyFileServerIDs)
	m.Group = optString(d.Group)
	m.HasSMBPassword = types.BoolValue(d.HasSMBPassword)
	m.HasSMBKeytab = types.BoolValue(d.HasSMBKeytab)
	m.SMBPassword = types.StringNull()
	m.SMBKerberosKeytab = types.StringNull()
}

// resendSecret is true when the user says the secret changed (a new
// version), when it belongs to another account (user or domain), or when
// the protocols change (a device that takes up smb needs its secret).
func (m *nasDeviceResourceModel) resendSecret(prior *nasDeviceResourceModel) bool {
	return !m.SMBCredentialsVersion.Equal(prior.SMBCredentialsVersion) || !m.SMBUser.Equal(prior.SMBUser) ||
		!m.SMBDomain.Equal(prior.SMBDomain) || !m.Protocols.Equal(prior.Protocols)
}

// nasDeviceWrite reads what a Create (state nil) or an Update needs: the
// plan, the prior state, and the SMB secrets to send, which exist only in
// the configuration. An Update sends none, telling the server to keep
// what it holds, unless resendSecret says otherwise (see secretWrite).
func nasDeviceWrite(ctx context.Context, diags *diag.Diagnostics, plan tfsdk.Plan, config tfsdk.Config,
	state *tfsdk.State) (planned, prior nasDeviceResourceModel, password, keytab string) {
	var cfg nasDeviceResourceModel
	diags.Append(plan.Get(ctx, &planned)...)
	diags.Append(config.Get(ctx, &cfg)...)
	if state != nil {
		diags.Append(state.Get(ctx, &prior)...)
		if !planned.resendSecret(&prior) {
			return planned, prior, "", ""
		}
	}
	return planned, prior, cfg.SMBPassword.ValueString(), cfg.SMBKerberosKeytab.ValueString()
}

func (r *nasDeviceResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	plan, _, password, keytab := nasDeviceWrite(ctx, &resp.Diagnostics, req.Plan, req.Config, nil)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	spec.SMBPassword, spec.SMBKerberosKeytab = password, keytab
	d, err := r.client.NASDevices().Create(ctx, api.NASDeviceRequest{NASDeviceSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create NAS device "+spec.Name, &plan, d, err,
		fillOnly((*nasDeviceResourceModel).fill))
}

func (r *nasDeviceResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "NAS device", func(m *nasDeviceResourceModel) string { return m.ID.ValueString() },
		r.client.NASDevices().Get, fillOnly((*nasDeviceResourceModel).fill))
}

func (r *nasDeviceResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	plan, state, password, keytab := nasDeviceWrite(ctx, &resp.Diagnostics, req.Plan, req.Config, &req.State)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	spec.SMBPassword, spec.SMBKerberosKeytab = password, keytab
	d, err := r.client.NASDevices().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.NASDeviceRequest{NASDeviceSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update NAS device "+spec.Name, &plan, d, err,
		fillOnly((*nasDeviceResourceModel).fill))
}

func (r *nasDeviceResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "NAS device",
		func(m *nasDeviceResourceModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.NASDevices().Delete)
}

// ImportState takes an id or a name: the server's Get accepts both, and Read
// replaces the name with the real id. The SMB secrets cannot be imported.
func (r *nasDeviceResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
