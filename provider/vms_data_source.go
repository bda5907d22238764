package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ datasource.DataSource              = (*vmsDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*vmsDataSource)(nil)
)

// vmFilterFields are the query parameters the server may name in a 400,
// which are also haven_vms' argument names.
var vmFilterFields = map[string]bool{"folder": true, "tag": true, "name_regex": true}

// NewVMsDataSource is the haven_vms data source, which lists the virtual
// machines of a registered vCenter, optionally filtered.
func NewVMsDataSource() datasource.DataSource {
	return &vmsDataSource{}
}

type vmsDataSource struct {
	client *api.Client
}

type vmsModel struct {
	VCenterID types.String `tfsdk:"vcenter_id"`
	Folder    types.String `tfsdk:"folder"`
	Tag       types.String `tfsdk:"tag"`
	NameRegex types.String `tfsdk:"name_regex"`
	VMs       types.List   `tfsdk:"vms"`
}

func (d *vmsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vms"
}

func (d *vmsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists the virtual machines of a `haven_vcenter`, optionally narrowed to a folder, a " +
			"tag or a name pattern; the filters combine with AND. An empty list is not an error.",
		Attributes: map[string]schema.Attribute{
			"vcenter_id": schema.StringAttribute{
				MarkdownDescription: "Id of the `haven_vcenter` to list.",
				Required:            true,
				Validators:          []validator.String{objectID("vCenter", "haven_vcenter.prod.id")},
			},
			"folder": schema.StringAttribute{
				MarkdownDescription: "Only VMs in this inventory folder or below it, such as `/DC1/vm/prod`.",
				Optional:            true,
				Validators: []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^/`),
					"must be an inventory path starting with '/', such as /DC1/vm/prod")},
			},
			"tag": schema.StringAttribute{
				MarkdownDescription: "Only VMs that carry this vSphere tag, written `category:tag`.",
				Optional:            true,
				Validators: []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^[^:]+:.+$`),
					"must be written category:tag, such as backup:gold")},
			},
			"name_regex": schema.StringAttribute{
				MarkdownDescription: "Only VMs whose name matches this regular expression (RE2 syntax, as in Go). " +
					"It is not anchored: use `^` and `$` to match whole names.",
				Optional:   true,
				Validators: []validator.String{goRegexp()},
			},
			"vms": schema.ListNestedAttribute{
				MarkdownDescription: "The matching VMs, in the order of the vCenter's inventory.",
				Computed:            true,
				NestedObject:        schema.NestedAttributeObject{Attributes: vmSchemaAttributes()},
			},
		},
	}
}

// goRegexp fails a pattern at plan time that the server, which compiles it
// with Go's regexp package, would refuse.
func goRegexp() validator.String {
	return stringCheck{desc: "must be a regular expression", check: func(s string) string {
		if _, err := regexp.Compile(s); err != nil {
			return fmt.Sprintf("is not a valid regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		return ""
	}}
}

func (d *vmsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *vmsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg vmsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	vcenterID := cfg.VCenterID.ValueString()
	vms, err := d.client.VMs(ctx, vcenterID, api.VMFilter{Folder: cfg.Folder.ValueString(), Tag: cfg.Tag.ValueString(),
		NameRegex: cfg.NameRegex.ValueString()})
	if err != nil {
		if api.IsNotFound(err) {
			resp.Diagnostics.AddAttributeError(path.Root("vcenter_id"), "No such vCenter",
				fmt.Sprintf("The Haven server has no vCenter with id %q.", vcenterID))
			return
		}
		addAPIError(&resp.Diagnostics, fmt.Sprintf("Could not list the VMs of vCenter %s", vcenterID), err, vmFilterFields)
		return
	}
	elems := make([]attr.Value, 0, len(vms))
	for i := range vms {
		m := newVMModel(ctx, &vms[i], &resp.Diagnostics)
		o, diags := types.ObjectValueFrom(ctx, vmAttrTypes, m)
		resp.Diagnostics.Append(diags...)
		elems = append(elems, o)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	list, diags := types.ListValue(types.ObjectType{AttrTypes: vmAttrTypes}, elems)
	resp.Diagnostics.Append(diags...)
	cfg.VMs = list
	resp.Diagnostics.Append(resp.State.Set(ctx, &cfg)...)
}
