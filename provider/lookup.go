package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/datasourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// uuidShaped matches what the server takes for an id rather than a name.
var uuidShaped = regexp.MustCompile(`(?i)^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$`)

var errNoSuchObject = &api.Error{Code: api.CodeNotFound, Status: http.StatusNotFound, Message: "not found"}

// lookup finds the object a data source names by id or by name. The
// server's Get takes either, deciding by the shape of the argument, so the
// answer is checked against what was asked: an id that is really a name,
// or a name shaped like an id, must not find some other object.
func lookup[Req, Obj any](ctx context.Context, c api.Collection[Req, Obj], id, name types.String,
	key func(*Obj) (id, name string)) (*Obj, error) {
	if !id.IsNull() {
		o, err := c.Get(ctx, id.ValueString())
		if err != nil {
			return nil, err
		}
		if gotID, _ := key(o); gotID != id.ValueString() {
			return nil, errNoSuchObject
		}
		return o, nil
	}
	want := name.ValueString()
	if !uuidShaped.MatchString(want) {
		o, err := c.Get(ctx, want)
		if err != nil {
			return nil, err
		}
		if _, gotName := key(o); gotName != want {
			return nil, errNoSuchObject
		}
		return o, nil
	}
	all, err := c.ListAll(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if _, gotName := key(&all[i]); gotName == want {
			return &all[i], nil
		}
	}
	return nil, errNoSuchObject
}

// addLookupError reports a failed data source lookup against the argument
// the user gave.
func addLookupError(diags *diag.Diagnostics, kind string, id, name types.String, err error) {
	attr, value := "name", name.ValueString()
	if !id.IsNull() {
		attr, value = "id", id.ValueString()
	}
	if api.IsNotFound(err) || errors.Is(err, errNoSuchObject) {
		diags.AddAttributeError(path.Root(attr), "No such "+kind,
			fmt.Sprintf("The Haven server has no %s with %s %q.", kind, attr, value))
		return
	}
	addAPIError(diags, fmt.Sprintf("Could not read %s %q", kind, value), err, nil)
}

// namedObjectSource is embedded by the data sources that find one object
// by id or by name: it holds their client and the rule that exactly one of
// the two is given.
type namedObjectSource struct {
	client *api.Client
}

func (d *namedObjectSource) ConfigValidators(context.Context) []datasource.ConfigValidator {
	return []datasource.ConfigValidator{
		datasourcevalidator.ExactlyOneOf(path.MatchRoot("id"), path.MatchRoot("name")),
	}
}

func (d *namedObjectSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// readNamedObject is the Read of those data sources: the object the
// configuration's id or name names (or a diagnostic on the argument
// given), made into the state by fill.
func readNamedObject[M, R, O any](ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse, kind string,
	coll api.Collection[R, O], idName func(*M) (id, name types.String), key func(*O) (id, name string),
	fill func(*O) (M, diag.Diagnostics)) {
	var cfg M
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id, name := idName(&cfg)
	o, err := lookup(ctx, coll, id, name, key)
	if err != nil {
		addLookupError(&resp.Diagnostics, kind, id, name, err)
		return
	}
	state, diags := fill(o)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}
