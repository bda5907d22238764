// Package provider is the Terraform provider for Haven. It speaks to the
// Haven server only through server/api, so the provider and the server can
// never disagree about the wire format.
package provider

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// Environment variables read when the matching provider argument is not set.
const (
	EnvEndpoint           = "HAVEN_ENDPOINT"
	EnvToken              = "HAVEN_TOKEN"
	EnvCAFile             = "HAVEN_CA_FILE"
	EnvInsecureSkipVerify = "HAVEN_INSECURE_SKIP_VERIFY"
	EnvMaxRetries         = "HAVEN_MAX_RETRIES"
)

// DefaultMaxRetries is how often a request that failed with 429, 5xx or a
// connection error is retried when neither max_retries nor
// HAVEN_MAX_RETRIES says otherwise.
const DefaultMaxRetries = 5

// maxMaxRetries bounds max_retries: with the client's 10 s backoff cap a
// larger value would make a dead server look like a hung Terraform run.
const maxMaxRetries = 100

var (
	_ provider.Provider                       = (*havenProvider)(nil)
	_ provider.ProviderWithEphemeralResources = (*havenProvider)(nil)
)

type havenProvider struct {
	version string
	// pointsPageSize, when positive, replaces the page size of recovery
	// point listings, so that tests can page through a few points.
	pointsPageSize int
}

type providerModel struct {
	Endpoint           types.String `tfsdk:"endpoint"`
	Token              types.String `tfsdk:"token"`
	CAFile             types.String `tfsdk:"ca_file"`
	InsecureSkipVerify types.Bool   `tfsdk:"insecure_skip_verify"`
	MaxRetries         types.Int64  `tfsdk:"max_retries"`
}

// New returns the constructor that providerserver.Serve and the acceptance
// tests call once per Terraform run. version ends up in the User-Agent.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &havenProvider{version: version}
	}
}

func (p *havenProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "haven"
	resp.Version = p.version
}

func (p *havenProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The Haven provider manages a [Haven](https://github.com/havenbackup/terraform-provider-haven) " +
			"backup server: where backups are stored, when and how long they are kept, which files are " +
			"protected, and restores.",
		Attributes: map[string]schema.Attribute{
			"endpoint": schema.StringAttribute{
				MarkdownDescription: "Base URL of the Haven API, such as `https://haven.example.com:8470`. " +
					"May also be set with the `" + EnvEndpoint + "` environment variable. Defaults to `" + api.DefaultEndpoint + "`.",
				Optional:   true,
				Validators: []validator.String{httpURL()},
			},
			"token": schema.StringAttribute{
				MarkdownDescription: "API bearer token. On first start the server writes an admin token to " +
					"`<data-dir>/admin.token`. May also be set with the `" + EnvToken + "` environment variable, " +
					"which keeps it out of the configuration.",
				Optional:  true,
				Sensitive: true,
			},
			"ca_file": schema.StringAttribute{
				MarkdownDescription: "Path of a PEM file with the certificate authorities that signed the server's TLS " +
					"certificate; replaces the system roots. May also be set with the `" + EnvCAFile + "` environment variable.",
				Optional: true,
			},
			"insecure_skip_verify": schema.BoolAttribute{
				MarkdownDescription: "Skip verification of the server's TLS certificate. Only for testing. " +
					"May also be set with the `" + EnvInsecureSkipVerify + "` environment variable. Defaults to `false`.",
				Optional: true,
			},
			"max_retries": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf("How many times a request that failed with HTTP 429, a 5xx status or a "+
					"connection error is retried, with exponential backoff that honours `Retry-After`. "+
					"May also be set with the `%s` environment variable. Defaults to `%d`.", EnvMaxRetries, DefaultMaxRetries),
				Optional:   true,
				Validators: []validator.Int64{int64validator.Between(0, maxMaxRetries)},
			},
		},
	}
}

func (p *havenProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}

	// A value computed from another resource is unknown during plan; we
	// cannot talk to a server we cannot name yet.
	for _, a := range []struct {
		name string
		v    interface{ IsUnknown() bool }
	}{
		{"endpoint", cfg.Endpoint}, {"token", cfg.Token}, {"ca_file", cfg.CAFile},
		{"insecure_skip_verify", cfg.InsecureSkipVerify}, {"max_retries", cfg.MaxRetries},
	} {
		if a.v.IsUnknown() {
			resp.Diagnostics.AddAttributeError(path.Root(a.name), "Unknown Haven provider "+a.name,
				"The provider cannot be configured with a value that is only known after apply. "+
					"Set "+a.name+" to a literal, a variable or an environment variable instead.")
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}

	endpoint := stringSetting(cfg.Endpoint, EnvEndpoint, api.DefaultEndpoint)
	token := stringSetting(cfg.Token, EnvToken, "")
	caFile := stringSetting(cfg.CAFile, EnvCAFile, "")

	if err := checkHTTPURL(endpoint); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Invalid Haven endpoint",
			fmt.Sprintf("endpoint (or %s) %s.", EnvEndpoint, err))
	}
	if token == "" {
		resp.Diagnostics.AddAttributeError(path.Root("token"), "Missing Haven API token",
			fmt.Sprintf("Set the provider's token argument or the %s environment variable. "+
				"A new server writes its admin token to <data-dir>/admin.token.", EnvToken))
	}

	insecure := cfg.InsecureSkipVerify.ValueBool()
	if cfg.InsecureSkipVerify.IsNull() {
		if s := os.Getenv(EnvInsecureSkipVerify); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				resp.Diagnostics.AddAttributeError(path.Root("insecure_skip_verify"), "Invalid "+EnvInsecureSkipVerify,
					fmt.Sprintf("%s must be true or false, got %q.", EnvInsecureSkipVerify, s))
			}
			insecure = b
		}
	}

	retries := DefaultMaxRetries
	if !cfg.MaxRetries.IsNull() {
		retries = int(cfg.MaxRetries.ValueInt64())
	} else if s := os.Getenv(EnvMaxRetries); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > maxMaxRetries {
			resp.Diagnostics.AddAttributeError(path.Root("max_retries"), "Invalid "+EnvMaxRetries,
				fmt.Sprintf("%s must be a whole number between 0 and %d, got %q.", EnvMaxRetries, maxMaxRetries, s))
		}
		retries = n
	}
	if resp.Diagnostics.HasError() {
		return
	}

	ua := fmt.Sprintf("terraform-provider-haven/%s", p.version)
	if req.TerraformVersion != "" {
		ua += " terraform/" + req.TerraformVersion
	}
	client, err := api.NewClient(api.ClientOptions{
		Endpoint: endpoint, Token: token, CAFile: caFile,
		InsecureSkipVerify: insecure, MaxRetries: retries, UserAgent: ua,
	})
	if err != nil {
		// The endpoint was checked above, so what is left is the CA bundle.
		resp.Diagnostics.AddAttributeError(path.Root("ca_file"), "Cannot use the Haven CA file", err.Error())
		return
	}
	resp.ResourceData = client
	resp.DataSourceData = client
	resp.EphemeralResourceData = client
}

// stringSetting applies the provider's precedence: the argument, then the
// environment variable, then the default.
func stringSetting(v types.String, env, def string) string {
	if !v.IsNull() {
		return v.ValueString()
	}
	if s := os.Getenv(env); s != "" {
		return s
	}
	return def
}

// checkHTTPURL mirrors the check api.NewClient makes, so that a bad endpoint
// is reported against the endpoint argument rather than as a generic error.
func checkHTTPURL(s string) error {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an http or https URL such as %s, got %q", api.DefaultEndpoint, s)
	}
	return nil
}

func (p *havenProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewStorageResource,
		NewBackupPolicyResource,
		NewFileServerResource,
		NewFilesetResource,
		NewRestoreResource,
		NewVCenterResource,
		NewProtectedVMResource,
		NewVMProtectionRuleResource,
		NewDatabaseServerResource,
		NewDatabaseSetResource,
		NewNASDeviceResource,
		NewNASShareResource,
		NewAWSTargetResource,
		NewDRPlanResource,
		NewDRTestResource,
		NewDRFailoverResource,
		NewDRFailbackResource,
	}
}

func (p *havenProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewStorageDataSource,
		NewBackupPolicyDataSource,
		NewFileServerDataSource,
		NewFilesetDataSource,
		newRecoveryPointsDataSource(p.pointsPageSize),
		NewRecoveryPointDataSource,
		NewVMDataSource,
		NewVMsDataSource,
		NewVCenterDataSource,
		NewProtectedVMDataSource,
		NewVMProtectionRuleDataSource,
		NewDatabaseServerDataSource,
		NewDatabaseSetDataSource,
		NewNASDeviceDataSource,
		NewNASShareDataSource,
		NewAWSTargetDataSource,
		NewDRPlanDataSource,
	}
}

func (p *havenProvider) EphemeralResources(_ context.Context) []func() ephemeral.EphemeralResource {
	return []func() ephemeral.EphemeralResource{
		NewFileServerActivation,
	}
}

// clientFrom recovers the client that Configure handed to resources and
// data sources. It is nil before Configure has run (e.g. during validation).
func clientFrom(data any, diags interface {
	AddError(summary, detail string)
}) *api.Client {
	if data == nil {
		return nil
	}
	c, ok := data.(*api.Client)
	if !ok {
		diags.AddError("Unexpected provider data",
			fmt.Sprintf("Expected *api.Client, got %T. This is a bug in the Haven provider.", data))
		return nil
	}
	return c
}
