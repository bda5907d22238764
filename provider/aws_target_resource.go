package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                   = (*awsTargetResource)(nil)
	_ resource.ResourceWithConfigure      = (*awsTargetResource)(nil)
	_ resource.ResourceWithImportState    = (*awsTargetResource)(nil)
	_ resource.ResourceWithValidateConfig = (*awsTargetResource)(nil)
)

// NewAWSTargetResource is the haven_aws_target resource: an AWS account
// and region that disaster recovery will recover VMs into.
func NewAWSTargetResource() resource.Resource {
	return &awsTargetResource{}
}

type awsTargetResource struct {
	client *api.Client
}

type awsTargetResourceModel struct {
	ID                     types.String `tfsdk:"id"`
	Version                types.Int64  `tfsdk:"version"`
	Name                   types.String `tfsdk:"name"`
	Region                 types.String `tfsdk:"region"`
	Credentials            types.String `tfsdk:"credentials"`
	AccessKeyID            types.String `tfsdk:"access_key_id"`
	SecretAccessKey        types.String `tfsdk:"secret_access_key"`
	SecretAccessKeyVersion types.Int64  `tfsdk:"secret_access_key_version"`
	RoleARN                types.String `tfsdk:"role_arn"`
	ExternalID             types.String `tfsdk:"external_id"`
	Endpoint               types.String `tfsdk:"endpoint"`
	VPCID                  types.String `tfsdk:"vpc_id"`
	SubnetID               types.String `tfsdk:"subnet_id"`
	SecurityGroupIDs       types.Set    `tfsdk:"security_group_ids"`
	Group                  types.String `tfsdk:"group"`
	HasSecret              types.Bool   `tfsdk:"has_secret"`
	AccountID              types.String `tfsdk:"account_id"`
	Status                 types.String `tfsdk:"status"`
	StatusMessage          types.String `tfsdk:"status_message"`
}

func (r *awsTargetResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_aws_target"
}

func (r *awsTargetResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Registers an AWS account and region with Haven as a target for disaster recovery, with the " +
			"credentials that reach it and the default network (VPC, subnet, security groups) of the recovered machines. " +
			"The server checks the target whenever it is created or changed: it asks AWS STS who the credentials are " +
			"(assuming the role, if any), which gives `account_id`, and that the VPC, the subnet and the security groups " +
			"exist in the region, with the subnet and the groups in the VPC. A target that exists in Terraform is " +
			"therefore known to be reachable. `haven_dr_plan` replicates VMs into a target; `haven_dr_test` and " +
			"`haven_dr_failover` launch them there.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the target.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write, so it gets no plan modifier.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the target on the server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the target in Haven: letters, digits, `.`, `_` and `-`, "+
					"starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"region": schema.StringAttribute{
				MarkdownDescription: "AWS region, such as `us-east-1`, `eu-west-3` or `us-gov-west-1`.",
				Required:            true,
				Validators:          []validator.String{awsTargetFieldCheck("must be an AWS region name", "region", func(s *api.AWSTargetSpec, v string) { s.Region = v })},
			},
			"credentials": schema.StringAttribute{
				MarkdownDescription: "Where the credentials come from: `ambient` (the AWS SDK's default chain on the Haven " +
					"server host: environment variables, shared configuration files, container or instance role), " +
					"`access_key` (`access_key_id` and `secret_access_key`), or `assume_role` (`role_arn`, assumed from " +
					"the ambient credentials or, when `access_key_id` and `secret_access_key` are given, from that key).",
				Required:   true,
				Validators: []validator.String{stringvalidator.OneOf(api.AWSCredentialSources...)},
			},
			"access_key_id": schema.StringAttribute{
				MarkdownDescription: "Access key ID. Required with `credentials = \"access_key\"`; optional with " +
					"`assume_role`, where it is the key the role is assumed from.",
				Optional:   true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"secret_access_key": schema.StringAttribute{
				MarkdownDescription: "Secret access key of `access_key_id`. **Write-only**: it is sent to the server, which " +
					"stores it encrypted, and is never stored in the Terraform plan or state (requires Terraform 1.11 or " +
					"later). Because Terraform cannot see changes of a write-only value, change `secret_access_key_version` " +
					"to send a new secret.",
				Optional:   true,
				Sensitive:  true,
				WriteOnly:  true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"secret_access_key_version": schema.Int64Attribute{
				MarkdownDescription: "Any number you change whenever `secret_access_key` changes: a new value makes " +
					"Terraform plan an update that sends the secret again.",
				Optional: true,
			},
			"role_arn": schema.StringAttribute{
				MarkdownDescription: "ARN of the IAM role to assume, such as `arn:aws:iam::123456789012:role/haven-dr`. " +
					"Required with, and only allowed with, `credentials = \"assume_role\"`. Its sessions are named `haven`.",
				Optional:   true,
				Validators: []validator.String{awsTargetFieldCheck("must be an IAM role ARN", "role_arn", func(s *api.AWSTargetSpec, v string) { s.RoleARN = v })},
			},
			"external_id": schema.StringAttribute{
				MarkdownDescription: "External ID that the role's trust policy asks for. Only with `credentials = \"assume_role\"`.",
				Optional:            true,
				Validators:          []validator.String{awsTargetFieldCheck("must be an external ID", "external_id", func(s *api.AWSTargetSpec, v string) { s.ExternalID = v })},
			},
			"endpoint": schema.StringAttribute{
				MarkdownDescription: "URL that replaces the endpoint of every AWS service (STS, EC2, EBS), for tests against " +
					"an AWS emulator or an AWS-compatible service. Leave unset for AWS.",
				Optional:   true,
				Validators: []validator.String{awsTargetFieldCheck("must be an http or https URL", "endpoint", func(s *api.AWSTargetSpec, v string) { s.Endpoint = v })},
			},
			"vpc_id": schema.StringAttribute{
				MarkdownDescription: "Default VPC of the recovered machines, such as `vpc-0a1b2c3d4e5f60718`. Required with " +
					"`subnet_id` or `security_group_ids`.",
				Optional:   true,
				Validators: []validator.String{awsTargetFieldCheck("must be a VPC id", "vpc_id", func(s *api.AWSTargetSpec, v string) { s.VPCID = v })},
			},
			"subnet_id": schema.StringAttribute{
				MarkdownDescription: "Default subnet of the recovered machines; it must be in `vpc_id`.",
				Optional:            true,
				Validators: []validator.String{awsTargetFieldCheck("must be a subnet id", "subnet_id", func(s *api.AWSTargetSpec, v string) {
					s.VPCID, s.SubnetID = "vpc-00000000", v
				})},
			},
			"security_group_ids": schema.SetAttribute{
				MarkdownDescription: "Default security groups of the recovered machines; each must belong to `vpc_id`.",
				ElementType:         types.StringType,
				Optional:            true,
				Validators: []validator.Set{setvalidator.SizeAtLeast(1), setvalidator.ValueStringsAre(awsTargetFieldCheck("must be a security group id",
					"security_group_ids[0]", func(s *api.AWSTargetSpec, v string) { s.VPCID, s.SecurityGroupIDs = "vpc-00000000", []string{v} }))},
			},
			"group": schema.StringAttribute{
				MarkdownDescription: "Administrative group of the target, as for `haven_vcenter`. It is recorded for the " +
					"disaster recovery plans to come, which will let only `group_admin` tokens of this group use the target.",
				Optional:   true,
				Validators: objectName(),
			},
			"has_secret": schema.BoolAttribute{
				MarkdownDescription: "Whether the server holds a secret access key for this target.",
				Computed:            true,
				PlanModifiers:       []planmodifier.Bool{hasSecretPlan{}},
			},
			// account_id, status and status_message come from the check
			// each write makes, so they are unknown whenever a write is
			// planned.
			"account_id": schema.StringAttribute{
				MarkdownDescription: "AWS account the credentials act in (the role's, when one is assumed), as AWS STS " +
					"answered at the last check.",
				Computed: true,
			},
			"status": schema.StringAttribute{
				MarkdownDescription: "How the server's last check of the target went: `connected` or `error`.",
				Computed:            true,
			},
			"status_message": schema.StringAttribute{
				MarkdownDescription: "What went wrong when `status` is `error`.",
				Computed:            true,
			},
		},
	}
}

func (r *awsTargetResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig applies the server's rules that tie attributes together
// (which credentials need which attributes, the VPC that a subnet or
// security groups need) at plan time. Every attribute set gets a
// known-good stand-in, so that only those rules can fail here: each
// attribute's own format is its validator's to report. Unknown values
// count as set.
func (r *awsTargetResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg awsTargetResourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || !isSet(cfg.Credentials) {
		return
	}
	given := func(v attr.Value, standIn string) string {
		if v.IsNull() {
			return ""
		}
		return standIn
	}
	spec := api.AWSTargetSpec{Name: "plan-check", Region: "us-east-1", Credentials: cfg.Credentials.ValueString(),
		AccessKeyID:     given(cfg.AccessKeyID, "plan-check"),
		SecretAccessKey: given(cfg.SecretAccessKey, "plan-check"),
		RoleARN:         given(cfg.RoleARN, "arn:aws:iam::123456789012:role/plan-check"),
		ExternalID:      given(cfg.ExternalID, "plan-check"),
		VPCID:           given(cfg.VPCID, "vpc-00000000"),
		SubnetID:        given(cfg.SubnetID, "subnet-00000000"),
	}
	if !cfg.SecurityGroupIDs.IsNull() {
		spec.SecurityGroupIDs = []string{"sg-00000000"}
	}
	if err := spec.Validate(false); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root(err.Field), "Invalid AWS target",
			fmt.Sprintf("Attribute %s %s.", err.Field, err.Message))
	}
}

// awsTargetFieldCheck validates one field with the server's own rules, by
// validating a target whose other fields are known good.
func awsTargetFieldCheck(desc, field string, set func(*api.AWSTargetSpec, string)) validator.String {
	return stringCheck{desc: desc, check: func(s string) string {
		spec := api.AWSTargetSpec{Name: "plan-check", Region: "us-east-1", Credentials: api.AWSCredentialsAmbient}
		set(&spec, s)
		if field == "role_arn" || field == "external_id" {
			spec.Credentials = api.AWSCredentialsAssumeRole
			if spec.RoleARN == "" {
				spec.RoleARN = "arn:aws:iam::123456789012:role/plan-check"
			}
		}
		if err := spec.Validate(true); err != nil && err.Field == field {
			return err.Message
		}
		return ""
	}}
}

func (m *awsTargetResourceModel) spec(ctx context.Context, diags *diag.Diagnostics) api.AWSTargetSpec {
	s := api.AWSTargetSpec{
		Name:        m.Name.ValueString(),
		Region:      m.Region.ValueString(),
		Credentials: m.Credentials.ValueString(),
		AccessKeyID: m.AccessKeyID.ValueString(),
		RoleARN:     m.RoleARN.ValueString(),
		ExternalID:  m.ExternalID.ValueString(),
		Endpoint:    m.Endpoint.ValueString(),
		VPCID:       m.VPCID.ValueString(),
		SubnetID:    m.SubnetID.ValueString(),
		Group:       m.Group.ValueString(),
	}
	if !m.SecurityGroupIDs.IsNull() {
		diags.Append(m.SecurityGroupIDs.ElementsAs(ctx, &s.SecurityGroupIDs, false)...)
	}
	return s
}

// fill copies what the server holds into the model. The secret never
// comes back and secret_access_key_version is Terraform's own
// bookkeeping, so both are left alone.
func (m *awsTargetResourceModel) fill(a *api.AWSTarget) {
	m.ID = types.StringValue(a.ID)
	m.Version = types.Int64Value(a.Version)
	m.Name = types.StringValue(a.Name)
	m.Region = types.StringValue(a.Region)
	m.Credentials = types.StringValue(a.Credentials)
	m.AccessKeyID = optString(a.AccessKeyID)
	m.RoleARN = optString(a.RoleARN)
	m.ExternalID = optString(a.ExternalID)
	m.Endpoint = optString(a.Endpoint)
	m.VPCID = optString(a.VPCID)
	m.SubnetID = optString(a.SubnetID)
	m.SecurityGroupIDs = optStringSet(a.SecurityGroupIDs)
	m.Group = optString(a.Group)
	m.HasSecret = types.BoolValue(a.HasSecret)
	m.AccountID = optString(a.AccountID)
	m.Status = types.StringValue(a.Status)
	m.StatusMessage = optString(a.StatusMessage)
	m.SecretAccessKey = types.StringNull()
}

// optStringSet is a set of strings, null when there are none.
func optStringSet(items []string) types.Set {
	if len(items) == 0 {
		return types.SetNull(types.StringType)
	}
	values := make([]attr.Value, len(items))
	for i, s := range items {
		values[i] = types.StringValue(s)
	}
	return types.SetValueMust(types.StringType, values)
}

func (m *awsTargetResourceModel) secret() types.String { return m.SecretAccessKey }

// resendSecret is true when the user says the secret changed (a new
// version), or when it belongs to a different access key: the server
// keeps a stored secret only for the same key.
func (m *awsTargetResourceModel) resendSecret(prior *awsTargetResourceModel) bool {
	return !m.SecretAccessKeyVersion.Equal(prior.SecretAccessKeyVersion) || !m.AccessKeyID.Equal(prior.AccessKeyID)
}

func (r *awsTargetResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	plan, _, secret := secretWrite[awsTargetResourceModel](ctx, &resp.Diagnostics, req.Plan, req.Config, nil)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	spec.SecretAccessKey = secret
	a, err := r.client.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create AWS target "+spec.Name, &plan, a, err,
		fillOnly((*awsTargetResourceModel).fill))
}

func (r *awsTargetResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "AWS target", func(m *awsTargetResourceModel) string { return m.ID.ValueString() }, r.client.AWSTargets().Get,
		fillOnly((*awsTargetResourceModel).fill))
}

func (r *awsTargetResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	plan, state, secret := secretWrite[awsTargetResourceModel](ctx, &resp.Diagnostics, req.Plan, req.Config, &req.State)
	spec := plan.spec(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	spec.SecretAccessKey = secret
	a, err := r.client.AWSTargets().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(),
		api.AWSTargetRequest{AWSTargetSpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update AWS target "+spec.Name, &plan, a, err,
		fillOnly((*awsTargetResourceModel).fill))
}

func (r *awsTargetResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "AWS target", func(m *awsTargetResourceModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.AWSTargets().Delete)
}

// ImportState takes an id or a name: the server's Get accepts both, and Read
// replaces the name with the real id. The secret cannot be imported.
func (r *awsTargetResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}
