package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                = (*databaseServerResource)(nil)
	_ resource.ResourceWithConfigure   = (*databaseServerResource)(nil)
	_ resource.ResourceWithImportState = (*databaseServerResource)(nil)
)

// NewDatabaseServerResource is the haven_database_server resource: a
// database cluster on a host whose Haven agent backs it up and restores it.
func NewDatabaseServerResource() resource.Resource {
	return &databaseServerResource{}
}

type databaseServerResource struct {
	client *api.Client
}

type databaseServerResourceModel struct {
	ID              types.String `tfsdk:"id"`
	Version         types.Int64  `tfsdk:"version"`
	Name            types.String `tfsdk:"name"`
	FileServerID    types.String `tfsdk:"file_server_id"`
	Engine          types.String `tfsdk:"engine"`
	Host            types.String `tfsdk:"host"`
	Port            types.Int64  `tfsdk:"port"`
	User            types.String `tfsdk:"user"`
	Database        types.String `tfsdk:"database"`
	Password        types.String `tfsdk:"password"`
	PasswordVersion types.Int64  `tfsdk:"password_version"`
	Group           types.String `tfsdk:"group"`
	HasPassword     types.Bool   `tfsdk:"has_password"`
	Detected        types.Object `tfsdk:"detected"`
}

// detectedAttrTypes are the attributes of a database server's detected
// object, in the resource and in the data source.
var detectedAttrTypes = map[string]attr.Type{
	"version":     types.StringType,
	"system_id":   types.StringType,
	"timeline":    types.Int64Type,
	"data_dir":    types.StringType,
	"log_refusal": types.StringType,
	"databases":   types.ListType{ElemType: types.StringType},
	"checked_at":  types.StringType,
}

// Descriptions shared by the resource and data source schemas.
const (
	descDatabaseServerDetected = "What the host's agent found on the database server at its last backup: null until a " +
		"backup of one of its `haven_database_set`s ran. Changing `file_server_id`, `host` or `port` clears it " +
		"until the next backup."
	descDatabaseServerHost = "Where the agent reaches the server: a Unix socket directory such as " +
		"`/var/run/postgresql`, or a host name or address (usually `localhost`, as the agent runs on the database's host)."
	descDatabaseServerGroup = "Administrative group of the database server: `group_admin` tokens of that group may " +
		"keep `haven_database_set`s on it and restore onto it."
)

// detectedDescs describe the attributes of detected.
var detectedDescs = map[string]string{
	"version":   "Server version, such as `16.4`.",
	"system_id": "Database system identifier of the cluster (`pg_control_system()`): it changes when the cluster is re-created.",
	"timeline":  "Timeline the cluster was on.",
	"data_dir":  "Data directory of the cluster: where a restore onto the original writes by default.",
	"log_refusal": "Why the server cannot have log backups (such as `archive_mode` off or `wal_level` minimal); " +
		"null when it can. Without log backups, no restore to an instant between points is possible.",
	"databases":  "Databases in the cluster.",
	"checked_at": "When the agent checked, as an RFC 3339 time in UTC.",
}

func (r *databaseServerResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_database_server"
}

func (r *databaseServerResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A PostgreSQL server (a cluster) that Haven protects. Haven reaches it through the " +
			"`haven agent` of its host, declared as a `haven_file_server` of location `agent`: the agent connects " +
			"to the server, backs it up and restores it. What to back up, when and where is a " +
			"`haven_database_set` on the server. Destroying a database server is refused while a database set " +
			"uses it.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the database server.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write: no UseStateForUnknown.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the database server on the Haven server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the database server in Haven: letters, digits, `.`, `_` "+
					"and `-`, starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"file_server_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_file_server` of the database's host. It must be of location " +
					"`agent`: its agent does the backups and restores.",
				Required:   true,
				Validators: []validator.String{objectID("file server", "haven_file_server.db01.id")},
			},
			"engine": schema.StringAttribute{
				MarkdownDescription: "Database engine: `postgresql`, the one Haven protects so far. Defaults to `postgresql`.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(api.EnginePostgreSQL),
				Validators: []validator.String{databaseServerFieldCheck("must be a database engine Haven protects", "engine",
					func(s *api.DatabaseServerSpec, v string) { s.Engine = v })},
			},
			"host": schema.StringAttribute{
				MarkdownDescription: descDatabaseServerHost,
				Required:            true,
				Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"port": schema.Int64Attribute{
				MarkdownDescription: "Port of the server (or of its socket file). Unset means PostgreSQL's default, 5432.",
				Optional:            true,
				Validators:          []validator.Int64{int64validator.Between(1, 65535)},
			},
			"user": schema.StringAttribute{
				MarkdownDescription: "Role the agent connects as: one with the `REPLICATION` attribute, or a superuser.",
				Required:            true,
				Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"database": schema.StringAttribute{
				MarkdownDescription: "Database the agent connects to. Defaults to `postgres`.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString("postgres"),
				Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"password": schema.StringAttribute{
				MarkdownDescription: "Password of `user`. Unset means the host's own authentication (`peer`, " +
					"`.pgpass`). **Write-only**: it is sent to the server, which stores it encrypted and hands it " +
					"only to the host's agent with each job, and is never stored in the Terraform plan or state " +
					"(requires Terraform 1.11 or later). Because Terraform cannot see changes of a write-only " +
					"value, change `password_version` to send a new password. It is also sent again when `user` " +
					"changes. The server keeps a password it holds when none is sent: removing `password` does not " +
					"remove it (`has_password` says whether it holds one).",
				Optional:   true,
				Sensitive:  true,
				WriteOnly:  true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"password_version": schema.Int64Attribute{
				MarkdownDescription: "Any number you change whenever `password` changes: a new value makes Terraform " +
					"plan an update that sends the password again.",
				Optional: true,
			},
			"group": schema.StringAttribute{
				MarkdownDescription: descDatabaseServerGroup + " Unset means only `admin` and `operator` tokens may.",
				Optional:            true,
				Validators:          objectName(),
			},
			"has_password": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a password for this database server.",
				Computed:            true,
				PlanModifiers:       []planmodifier.Bool{databasePasswordPlan{}},
			},
			// detected is written by backups, which may run between a plan
			// and its apply, so a planned write makes it unknown.
			"detected": schema.SingleNestedAttribute{
				MarkdownDescription: descDatabaseServerDetected,
				Computed:            true,
				Attributes:          detectedSchemaAttributes(),
			},
		},
	}
}

// detectedSchemaAttributes are the attributes of detected, all computed.
func detectedSchemaAttributes() map[string]schema.Attribute {
	out := map[string]schema.Attribute{}
	for name, t := range detectedAttrTypes {
		desc := detectedDescs[name]
		switch t {
		case types.StringType:
			out[name] = schema.StringAttribute{MarkdownDescription: desc, Computed: true}
		case types.Int64Type:
			out[name] = schema.Int64Attribute{MarkdownDescription: desc, Computed: true}
		default:
			out[name] = schema.ListAttribute{MarkdownDescription: desc, ElementType: types.StringType, Computed: true}
		}
	}
	return out
}

func (r *databaseServerResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// databaseServerFieldCheck validates one field with the server's own
// rules, by validating a database server whose other fields are known
// good.
func databaseServerFieldCheck(desc, field string, set func(*api.DatabaseServerSpec, string)) validator.String {
	return stringCheck{desc: desc, check: func(s string) string {
		spec := api.DatabaseServerSpec{Name: "plan-check", FileServerID: "f", Host: "/var/run/postgresql", User: "plan-check"}
		set(&spec, s)
		if err := spec.Validate(); err != nil && err.Field == field {
			return err.Message
		}
		return ""
	}}
}

// databasePasswordPlan predicts has_password: it changes only when a write
// sends a password, which is when Update sends it (see resendSecret). The
// server keeps the password it holds when none is sent.
type databasePasswordPlan struct{}

func (databasePasswordPlan) Description(context.Context) string {
	return "unchanged unless a password is sent (on create, or when user or password_version change)"
}

func (m databasePasswordPlan) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (databasePasswordPlan) PlanModifyBool(ctx context.Context, req planmodifier.BoolRequest, resp *planmodifier.BoolResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var user, priorUser, password types.String
	var version, priorVersion types.Int64
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("user"), &user)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("password_version"), &version)...)
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("password"), &password)...)
	creating := req.State.Raw.IsNull()
	if !creating {
		resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("user"), &priorUser)...)
		resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("password_version"), &priorVersion)...)
	}
	if resp.Diagnostics.HasError() || user.IsUnknown() || version.IsUnknown() || password.IsUnknown() {
		return
	}
	sends := creating || !user.Equal(priorUser) || !version.Equal(priorVersion)
	switch {
	case sends && !password.IsNull():
		resp.PlanValue = types.BoolValue(true)
	case creating:
		resp.PlanValue = types.BoolValue(false)
	default:
		// Nothing sent, or an empty password: the server keeps what it holds.
		resp.PlanValue = req.StateValue
	}
}

func (m *databaseServerResourceModel) spec() api.DatabaseServerSpec {
	return api.DatabaseServerSpec{
		Name:         m.Name.ValueString(),
		FileServerID: m.FileServerID.ValueString(),
		Engine:       m.Engine.ValueString(),
		Host:         m.Host.ValueString(),
		Port:         int(m.Port.ValueInt64()),
		User:         m.User.ValueString(),
		Database:     m.Database.ValueString(),
		Group:        m.Group.ValueString(),
	}
}

// fill copies what the server holds into the model. The password never
// comes back and password_version is Terraform's own bookkeeping, so both
// are left alone.
func (m *databaseServerResourceModel) fill(s *api.DatabaseServer) {
	m.ID = types.StringValue(s.ID)
	m.Version = types.Int64Value(s.Version)
	m.Name = types.StringValue(s.Name)
	m.FileServerID = types.StringValue(s.FileServerID)
	m.Engine = types.StringValue(s.Engine)
	m.Host = types.StringValue(s.Host)
	m.Port = optPort(s.Port)
	m.User = types.StringValue(s.User)
	m.Database = types.StringValue(s.Database)
	m.Group = optString(s.Group)
	m.HasPassword = types.BoolValue(s.HasPassword)
	m.Detected = detectedValue(s.Detected)
	m.Password = types.StringNull()
}

// optPort is a port the server stores as 0 when it is PostgreSQL's default.
func optPort(p int) types.Int64 {
	if p == 0 {
		return types.Int64Null()
	}
	return types.Int64Value(int64(p))
}

// detectedValue is the detected object of a database server, null until
// its agent has looked.
func detectedValue(d *api.DatabaseDetected) types.Object {
	if d == nil {
		return types.ObjectNull(detectedAttrTypes)
	}
	dbs := make([]attr.Value, len(d.Databases))
	for i, name := range d.Databases {
		dbs[i] = types.StringValue(name)
	}
	checked := types.StringNull()
	if !d.CheckedAt.IsZero() {
		checked = types.StringValue(d.CheckedAt.UTC().Format(time.RFC3339Nano))
	}
	return types.ObjectValueMust(detectedAttrTypes, map[string]attr.Value{
		"version":     types.StringValue(d.Version),
		"system_id":   types.StringValue(d.SystemID),
		"timeline":    types.Int64Value(int64(d.Timeline)),
		"data_dir":    types.StringValue(d.DataDir),
		"log_refusal": optString(d.LogRefusal),
		"databases":   types.ListValueMust(types.StringType, dbs),
		"checked_at":  checked,
	})
}

func (m *databaseServerResourceModel) secret() types.String { return m.Password }

// resendSecret is true when the user says the password changed (a new
// version), or when the role changes: the password belongs to the role.
func (m *databaseServerResourceModel) resendSecret(prior *databaseServerResourceModel) bool {
	return !m.PasswordVersion.Equal(prior.PasswordVersion) || !m.User.Equal(prior.User)
}

func (r *databaseServerResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	plan, _, password := secretWrite[databaseServerResourceModel](ctx, &resp.Diagnostics, req.Plan, req.Config, nil)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := plan.spec()
	spec.Password = password
	s, err := r.client.DatabaseServers().Create(ctx, api.DatabaseServerRequest{DatabaseServerSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create database server "+spec.Name, &plan, s, err,
		fillOnly((*databaseServerResourceModel).fill))
}

func (r *databaseServerResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "database server", func(m *databaseServerResourceModel) string { return m.ID.ValueString() },
		r.client.DatabaseServers().Get, fillOnly((*databaseServerResourceModel).fill))
}

func (r *databaseServerResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	plan, state, password := secretWrite[databaseServerResourceModel](ctx, &resp.Diagnostics, req.Plan, req.Config, &req.State)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := plan.spec()
	spec.Password = password
	s, err := r.client.DatabaseServers().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.DatabaseServerRequest{DatabaseServerSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update database server "+spec.Name, &plan, s, err,
		fillOnly((*databaseServerResourceModel).fill))
}

func (r *databaseServerResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "database server",
		func(m *databaseServerResourceModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.DatabaseServers().Delete)
}

// ImportState takes an id or a name: the server's Get accepts both, and Read
// replaces the name with the real id. The password cannot be imported.
func (r *databaseServerResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
