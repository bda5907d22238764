package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
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
	_ resource.Resource                   = (*storageResource)(nil)
	_ resource.ResourceWithConfigure      = (*storageResource)(nil)
	_ resource.ResourceWithImportState    = (*storageResource)(nil)
	_ resource.ResourceWithValidateConfig = (*storageResource)(nil)
)

// NewStorageResource is the haven_storage resource: a place where recovery
// point data lives (a directory on the server, or an S3 bucket).
func NewStorageResource() resource.Resource {
	return &storageResource{}
}

type storageResource struct {
	client *api.Client
}

type storageResourceModel struct {
	ID                     types.String `tfsdk:"id"`
	Version                types.Int64  `tfsdk:"version"`
	Name                   types.String `tfsdk:"name"`
	Kind                   types.String `tfsdk:"kind"`
	Path                   types.String `tfsdk:"path"`
	Bucket                 types.String `tfsdk:"bucket"`
	Prefix                 types.String `tfsdk:"prefix"`
	Region                 types.String `tfsdk:"region"`
	Endpoint               types.String `tfsdk:"endpoint"`
	ForcePathStyle         types.Bool   `tfsdk:"force_path_style"`
	AccessKeyID            types.String `tfsdk:"access_key_id"`
	SecretAccessKey        types.String `tfsdk:"secret_access_key"`
	SecretAccessKeyVersion types.Int64  `tfsdk:"secret_access_key_version"`
	ColdStorageClass       types.String `tfsdk:"cold_storage_class"`
	ForceDestroy           types.Bool   `tfsdk:"force_destroy"`
	HasSecret              types.Bool   `tfsdk:"has_secret"`
}

// s3OnlyStorageAttributes may be set only on storages of kind s3.
var s3OnlyStorageAttributes = []string{"bucket", "prefix", "region", "endpoint", "force_path_style",
	"access_key_id", "secret_access_key", "cold_storage_class"}

func (r *storageResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_storage"
}

func (r *storageResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A storage is where Haven keeps recovery-point data: a directory on the Haven server " +
			"(`kind = \"filesystem\"`) or an S3 or S3-compatible bucket (`kind = \"s3\"`). All data is deduplicated, " +
			"compressed and encrypted before it is written. When a storage is created or its location or " +
			"credentials change, the server probes it by writing, reading and deleting a small object, so a " +
			"storage that exists in Terraform is known to work.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the storage.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write, so it must become unknown
			// whenever an update is planned; it gets no plan modifier.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the storage on the server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the storage: letters, digits, `.`, `_` and `-`, "+
					"starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"kind": schema.StringAttribute{
				MarkdownDescription: "Kind of storage: `filesystem` (a directory on the Haven server) or `s3` " +
					"(an S3 or S3-compatible bucket). Changing it replaces the storage: the server does not " +
					"move existing data between kinds.",
				Required:   true,
				Validators: []validator.String{stringvalidator.OneOf(api.StorageFilesystem, api.StorageS3)},
				// The server refuses to change a storage's kind (422), so a
				// new kind can only be a new storage.
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"path": schema.StringAttribute{
				MarkdownDescription: "Absolute, clean directory on the Haven server that holds the data. " +
					"Required for, and only allowed with, `kind = \"filesystem\"`.",
				Optional: true,
				Validators: []validator.String{
					absolutePath(),
					stringvalidator.ConflictsWith(path.MatchRoot("bucket")),
				},
			},
			"bucket": schema.StringAttribute{
				MarkdownDescription: "S3 bucket name (3 to 63 lower-case letters, digits, `.` and `-`). " +
					"The bucket must exist. Required for, and only allowed with, `kind = \"s3\"`.",
				Optional:   true,
				Validators: []validator.String{bucketName()},
			},
			"prefix": schema.StringAttribute{
				MarkdownDescription: "Key prefix inside the bucket, without leading or trailing `/`, so that " +
					"several storages can share a bucket. Only for `kind = \"s3\"`.",
				Optional:   true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(1), keyPrefix()},
			},
			"region": schema.StringAttribute{
				MarkdownDescription: "AWS region of the bucket. Only for `kind = \"s3\"`, where it defaults to `" +
					api.DefaultS3Region + "`.",
				Optional:      true,
				Computed:      true,
				Validators:    []validator.String{stringvalidator.LengthAtLeast(1)},
				PlanModifiers: []planmodifier.String{s3RegionDefault{}},
			},
			"endpoint": schema.StringAttribute{
				MarkdownDescription: "URL of an S3-compatible service (MinIO, Ceph, ...). Leave unset for AWS. " +
					"Only for `kind = \"s3\"`.",
				Optional:   true,
				Validators: []validator.String{s3Endpoint()},
			},
			"force_path_style": schema.BoolAttribute{
				MarkdownDescription: "Address the bucket as `endpoint/bucket` rather than `bucket.endpoint`, which " +
					"most S3-compatible services need. Only for `kind = \"s3\"`. Defaults to `false`.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
			},
			"access_key_id": schema.StringAttribute{
				MarkdownDescription: "Access key ID of the S3 credentials. Leave it and `secret_access_key` unset to " +
					"use the server's ambient credentials (environment, instance profile). Only for `kind = \"s3\"`.",
				Optional: true,
				Validators: []validator.String{
					stringvalidator.LengthAtLeast(1),
					stringvalidator.AlsoRequires(path.MatchRoot("secret_access_key")),
				},
			},
			"secret_access_key": schema.StringAttribute{
				MarkdownDescription: "Secret access key of the S3 credentials. **Write-only**: it is sent to the " +
					"server, which stores it encrypted, and is never stored in the Terraform plan or state " +
					"(requires Terraform 1.11 or later). Because Terraform cannot see changes of a write-only " +
					"value, change `secret_access_key_version` to send a new secret. Only for `kind = \"s3\"`.",
				Optional:  true,
				Sensitive: true,
				WriteOnly: true,
				Validators: []validator.String{
					stringvalidator.LengthAtLeast(1),
					stringvalidator.AlsoRequires(path.MatchRoot("access_key_id")),
				},
			},
			"secret_access_key_version": schema.Int64Attribute{
				MarkdownDescription: "Any number you change whenever `secret_access_key` changes: a new value makes " +
					"Terraform plan an update that sends the secret again. Only meaningful with `secret_access_key`.",
				Optional: true,
			},
			"cold_storage_class": schema.StringAttribute{
				MarkdownDescription: "S3 storage class of the cold tier, used for recovery points that a backup " +
					"policy's `tiering.cold_after_days` moves out of the warm tier. One of " +
					backquoteList(api.ColdStorageClasses) + ". Only for `kind = \"s3\"`.",
				Optional:   true,
				Validators: []validator.String{stringvalidator.OneOf(api.ColdStorageClasses...)},
			},
			"force_destroy": schema.BoolAttribute{
				MarkdownDescription: "Whether destroying the storage may expire the recovery points it still holds " +
					"and delete their data. Recovery points outlive the filesets and protected VMs that made them and " +
					"stay restorable until their retention ends, so by default (`false`) the server refuses to delete " +
					"a storage that holds any, and says how many. With `true`, destroying the storage expires them, " +
					"deletes every pack, index entry and key of the storage, and Terraform shows a warning with what " +
					"was removed; points on legal hold still refuse the destroy. As with `aws_backup_vault`, set it " +
					"and apply before the destroy: the server acts on the value it holds.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
			},
			"has_secret": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a secret access key for this storage.",
				Computed:            true,
				PlanModifiers:       []planmodifier.Bool{hasSecretPlan{}},
			},
		},
	}
}

func (r *storageResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig checks the rules that depend on kind, which attribute
// validators cannot express, so that they fail at plan time.
func (r *storageResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg storageResourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || cfg.Kind.IsUnknown() || cfg.Kind.IsNull() {
		return
	}
	set := map[string]bool{
		"path":               isSet(cfg.Path),
		"bucket":             isSet(cfg.Bucket),
		"prefix":             isSet(cfg.Prefix),
		"region":             isSet(cfg.Region),
		"endpoint":           isSet(cfg.Endpoint),
		"force_path_style":   cfg.ForcePathStyle.ValueBool(),
		"access_key_id":      isSet(cfg.AccessKeyID),
		"secret_access_key":  isSet(cfg.SecretAccessKey),
		"cold_storage_class": isSet(cfg.ColdStorageClass),
	}
	kind := cfg.Kind.ValueString()
	switch kind {
	case api.StorageFilesystem:
		if cfg.Path.IsNull() {
			resp.Diagnostics.AddAttributeError(path.Root("path"), "Missing path",
				`Attribute path is required when kind is "filesystem".`)
		}
		for _, name := range s3OnlyStorageAttributes {
			// path with bucket is already reported by ConflictsWith.
			if set[name] && !(name == "bucket" && set["path"]) {
				resp.Diagnostics.AddAttributeError(path.Root(name), "Attribute not allowed for a filesystem storage",
					fmt.Sprintf(`Attribute %s applies only to storages with kind = "s3".`, name))
			}
		}
	case api.StorageS3:
		if cfg.Bucket.IsNull() {
			resp.Diagnostics.AddAttributeError(path.Root("bucket"), "Missing bucket",
				`Attribute bucket is required when kind is "s3".`)
		}
		if set["path"] && !set["bucket"] {
			resp.Diagnostics.AddAttributeError(path.Root("path"), "Attribute not allowed for an s3 storage",
				`Attribute path applies only to storages with kind = "filesystem".`)
		}
	}
}

// isSet tells whether a configuration value is known to be present. Unknown
// values are given the benefit of the doubt until apply.
func isSet(v interface {
	IsNull() bool
	IsUnknown() bool
}) bool {
	return !v.IsNull() && !v.IsUnknown()
}

func (m *storageResourceModel) spec() api.StorageSpec {
	return api.StorageSpec{
		Name:             m.Name.ValueString(),
		Kind:             m.Kind.ValueString(),
		Path:             m.Path.ValueString(),
		Bucket:           m.Bucket.ValueString(),
		Prefix:           m.Prefix.ValueString(),
		Region:           m.Region.ValueString(),
		Endpoint:         m.Endpoint.ValueString(),
		ForcePathStyle:   m.ForcePathStyle.ValueBool(),
		AccessKeyID:      m.AccessKeyID.ValueString(),
		ColdStorageClass: m.ColdStorageClass.ValueString(),
		ForceDestroy:     m.ForceDestroy.ValueBool(),
	}
}

// fill copies what the server holds into the model. The secret never comes
// back, and secret_access_key_version is Terraform's own bookkeeping, so
// both are left as they are.
func (m *storageResourceModel) fill(s *api.Storage) {
	m.ID = types.StringValue(s.ID)
	m.Version = types.Int64Value(s.Version)
	m.Name = types.StringValue(s.Name)
	m.Kind = types.StringValue(s.Kind)
	m.Path = optString(s.Path)
	m.Bucket = optString(s.Bucket)
	m.Prefix = optString(s.Prefix)
	m.Region = optString(s.Region)
	m.Endpoint = optString(s.Endpoint)
	m.ForcePathStyle = types.BoolValue(s.ForcePathStyle)
	m.AccessKeyID = optString(s.AccessKeyID)
	m.ColdStorageClass = optString(s.ColdStorageClass)
	m.ForceDestroy = types.BoolValue(s.ForceDestroy)
	m.HasSecret = types.BoolValue(s.HasSecret)
	m.SecretAccessKey = types.StringNull()
}

func (m *storageResourceModel) secret() types.String { return m.SecretAccessKey }

// resendSecret is true when the user says the secret changed (a new
// version), or when it belongs to a different access key.
func (m *storageResourceModel) resendSecret(prior *storageResourceModel) bool {
	return !m.SecretAccessKeyVersion.Equal(prior.SecretAccessKeyVersion) || !m.AccessKeyID.Equal(prior.AccessKeyID)
}

func (r *storageResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	plan, _, secret := secretWrite[storageResourceModel](ctx, &resp.Diagnostics, req.Plan, req.Config, nil)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := plan.spec()
	spec.SecretAccessKey = secret
	s, err := r.client.Storages().Create(ctx, api.StorageRequest{StorageSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create storage "+spec.Name, &plan, s, err,
		fillOnly((*storageResourceModel).fill))
}

func (r *storageResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "storage", func(m *storageResourceModel) string { return m.ID.ValueString() }, r.client.Storages().Get,
		fillOnly((*storageResourceModel).fill))
}

func (r *storageResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	plan, state, secret := secretWrite[storageResourceModel](ctx, &resp.Diagnostics, req.Plan, req.Config, &req.State)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := plan.spec()
	spec.SecretAccessKey = secret
	s, err := r.client.Storages().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.StorageRequest{StorageSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update storage "+spec.Name, &plan, s, err,
		fillOnly((*storageResourceModel).fill))
}

// Delete deletes the storage; a forced destroy that expired recovery
// points is reported as a warning, so that it shows in the apply output.
func (r *storageResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var name string
	deleteResource(ctx, req, resp, "storage", func(m *storageResourceModel) (string, string) {
		name = m.Name.ValueString()
		return m.ID.ValueString(), name
	}, func(ctx context.Context, id string) error {
		gone, err := r.client.DeleteStorage(ctx, id)
		if gone != nil {
			resp.Diagnostics.AddWarning("Storage "+name+" destroyed with its recovery points", gone.Message)
		}
		return err
	})
}

// ImportState takes an id or a name: the server's Get accepts both, and Read
// replaces the name with the real id.
func (r *storageResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// s3RegionDefault plans the region the server will store, so that leaving
// region out of an s3 storage plans us-east-1 instead of an unknown value,
// and removing it from the configuration plans the change back.
type s3RegionDefault struct{}

func (s3RegionDefault) Description(context.Context) string {
	return "defaults to " + api.DefaultS3Region + " for s3 storages"
}

func (d s3RegionDefault) MarkdownDescription(ctx context.Context) string { return d.Description(ctx) }

func (s3RegionDefault) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if !req.ConfigValue.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var kind types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("kind"), &kind)...)
	switch {
	case kind.IsUnknown():
		resp.PlanValue = types.StringUnknown()
	case kind.ValueString() == api.StorageS3:
		resp.PlanValue = types.StringValue(api.DefaultS3Region)
	default:
		resp.PlanValue = types.StringNull()
	}
}

// hasSecretPlan keeps has_secret quiet in plans that do not touch the
// credentials. When they do change, the value stays unknown: only the server
// knows whether it ends up holding a secret.
type hasSecretPlan struct{}

func (hasSecretPlan) Description(context.Context) string {
	return "unchanged unless access_key_id or secret_access_key_version change"
}

func (m hasSecretPlan) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (hasSecretPlan) PlanModifyBool(ctx context.Context, req planmodifier.BoolRequest, resp *planmodifier.BoolResponse) {
	if req.StateValue.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var plannedKey, priorKey types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("access_key_id"), &plannedKey)...)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("access_key_id"), &priorKey)...)
	var plannedVersion, priorVersion types.Int64
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("secret_access_key_version"), &plannedVersion)...)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("secret_access_key_version"), &priorVersion)...)
	if plannedKey.Equal(priorKey) && plannedVersion.Equal(priorVersion) {
		resp.PlanValue = req.StateValue
	}
}

func optString(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func backquoteList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = "`" + s + "`"
	}
	return strings.Join(quoted, ", ")
}
