package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                = (*databaseSetResource)(nil)
	_ resource.ResourceWithConfigure   = (*databaseSetResource)(nil)
	_ resource.ResourceWithImportState = (*databaseSetResource)(nil)
)

// NewDatabaseSetResource is the haven_database_set resource: what of a
// database server is backed up, under which policy, into which storage.
func NewDatabaseSetResource() resource.Resource {
	return &databaseSetResource{}
}

type databaseSetResource struct {
	client *api.Client
}

// databaseSetModel is shared by the resource and the data source, whose
// schemas have the same attribute names and types.
type databaseSetModel struct {
	ID               types.String `tfsdk:"id"`
	Version          types.Int64  `tfsdk:"version"`
	Name             types.String `tfsdk:"name"`
	DatabaseServerID types.String `tfsdk:"database_server_id"`
	PolicyID         types.String `tfsdk:"policy_id"`
	StorageID        types.String `tfsdk:"storage_id"`
	VerifyRestore    types.Bool   `tfsdk:"verify_restore"`
	Group            types.String `tfsdk:"group"`
}

// Descriptions shared by the resource and data source schemas.
const (
	descVerifyRestore = "Restore each full and differential point into a scratch cluster on the agent's host, " +
		"check it (`pg_amcheck`, a row count of every table) and record the result on the point, where the " +
		"`haven_recovery_point` data source shows it as `database.verified`."
	descDatabaseSetGroup = "Administrative group of the database set: `group_admin` tokens of that group may manage " +
		"it and run its backups and restores."
)

func (r *databaseSetResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_database_set"
}

func (r *databaseSetResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A database set protects a `haven_database_server`: the `haven_backup_policy` that says " +
			"when backups run and how long they are kept, and the `haven_storage` that holds them. A PostgreSQL " +
			"set is the whole cluster: its physical backup holds every database and tablespace. The policy's " +
			"`full` schedule takes full backups, its `incremental` schedule differential ones (what changed " +
			"since the last full), and `log_backup_interval_minutes` log backups of the archived write-ahead " +
			"log. Each backup makes a recovery point that `haven_restore` can restore with a `database` block. " +
			"Destroying a set stops its backups; its recovery points stay restorable until the retention of " +
			"the policy it was under expires them.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the database set; recovery points and jobs name it as their asset.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write: no UseStateForUnknown.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the database set on the server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the database set: letters, digits, `.`, `_` and `-`, "+
					"starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"database_server_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_database_server` to back up.",
				Required:            true,
				Validators:          []validator.String{objectID("database server", "haven_database_server.orders.id")},
			},
			"policy_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_backup_policy` that schedules and retains the backups.",
				Required:            true,
				Validators:          []validator.String{objectID("backup policy", "haven_backup_policy.gold.id")},
			},
			"storage_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_storage` that holds the recovery points. While a database " +
					"set refers to it, the server refuses to delete the storage.",
				Required:   true,
				Validators: []validator.String{objectID("storage", "haven_storage.local.id")},
			},
			"verify_restore": schema.BoolAttribute{
				MarkdownDescription: descVerifyRestore + " Defaults to `false`.",
				Optional:            true,
				Computed:            true,
				Default:             booldefault.StaticBool(false),
			},
			"group": schema.StringAttribute{
				MarkdownDescription: descDatabaseSetGroup + " Unset means only `admin` and `operator` tokens may.",
				Optional:            true,
				Validators:          objectName(),
			},
		},
	}
}

func (r *databaseSetResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (m *databaseSetModel) spec() api.DatabaseSetSpec {
	return api.DatabaseSetSpec{
		Name:             m.Name.ValueString(),
		DatabaseServerID: m.DatabaseServerID.ValueString(),
		PolicyID:         m.PolicyID.ValueString(),
		StorageID:        m.StorageID.ValueString(),
		VerifyRestore:    m.VerifyRestore.ValueBool(),
		Group:            m.Group.ValueString(),
	}
}

func (m *databaseSetModel) fill(s *api.DatabaseSet) {
	m.ID = types.StringValue(s.ID)
	m.Version = types.Int64Value(s.Version)
	m.Name = types.StringValue(s.Name)
	m.DatabaseServerID = types.StringValue(s.DatabaseServerID)
	m.PolicyID = types.StringValue(s.PolicyID)
	m.StorageID = types.StringValue(s.StorageID)
	m.VerifyRestore = types.BoolValue(s.VerifyRestore)
	m.Group = optString(s.Group)
}

func (r *databaseSetResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan databaseSetModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := plan.spec()
	s, err := r.client.DatabaseSets().Create(ctx, api.DatabaseSetRequest{DatabaseSetSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create database set "+spec.Name, &plan, s, err,
		fillOnly((*databaseSetModel).fill))
}

func (r *databaseSetResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "database set", func(m *databaseSetModel) string { return m.ID.ValueString() },
		r.client.DatabaseSets().Get, fillOnly((*databaseSetModel).fill))
}

func (r *databaseSetResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state databaseSetModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := plan.spec()
	s, err := r.client.DatabaseSets().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.DatabaseSetRequest{DatabaseSetSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update database set "+spec.Name, &plan, s, err,
		fillOnly((*databaseSetModel).fill))
}

func (r *databaseSetResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "database set", func(m *databaseSetModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.DatabaseSets().Delete)
}

// ImportState takes an id or a name: the server's Get accepts both, and Read
// replaces the name with the real id.
func (r *databaseSetResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
