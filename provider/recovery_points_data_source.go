package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ datasource.DataSource                   = (*recoveryPointsDataSource)(nil)
	_ datasource.DataSourceWithConfigure      = (*recoveryPointsDataSource)(nil)
	_ datasource.DataSourceWithValidateConfig = (*recoveryPointsDataSource)(nil)
)

// Kinds and tiers the server filters points by.
var (
	pointKinds = []string{api.BackupFull, api.BackupIncremental, "differential", "log"}
	pointTiers = []string{"warm", "cold"}
)

const (
	defaultPointsLimit = 100
	maxPointsLimit     = 10000
	// maxPointsPage is the largest page the server hands out.
	maxPointsPage = 1000
	// boundarySlack is how many more points a page asks for when an upper
	// time bound makes the server list some that are then dropped.
	boundarySlack = 10
)

// pointFilterFields are the query parameters the server may name in a 400,
// which are also haven_recovery_points' argument names.
var pointFilterFields = map[string]bool{
	"asset_id": true, "kind": true, "tier": true, "created_after": true, "created_before": true,
}

// newRecoveryPointsDataSource returns the constructor of the
// haven_recovery_points data source, which lists recovery points, newest
// first. pageSize is the page size asked of the server; 0 means the
// largest.
func newRecoveryPointsDataSource(pageSize int) func() datasource.DataSource {
	return func() datasource.DataSource {
		return &recoveryPointsDataSource{pageSize: pageSize}
	}
}

type recoveryPointsDataSource struct {
	client *api.Client
	// pageSize, when positive, is the page size asked of the server
	// instead of the largest one; tests lower it to page through a
	// handful of points.
	pageSize int
}

type recoveryPointsModel struct {
	AssetID       types.String `tfsdk:"asset_id"`
	Kind          types.String `tfsdk:"kind"`
	Tier          types.String `tfsdk:"tier"`
	CreatedAfter  types.String `tfsdk:"created_after"`
	CreatedBefore types.String `tfsdk:"created_before"`
	Limit         types.Int64  `tfsdk:"limit"`
	Points        types.List   `tfsdk:"points"`
}

// pointModel is one recovery point, as an element of the list and,
// flattened, as the haven_recovery_point data source.
type pointModel struct {
	ID              types.String `tfsdk:"id"`
	AssetID         types.String `tfsdk:"asset_id"`
	AssetName       types.String `tfsdk:"asset_name"`
	AssetDeleted    types.Bool   `tfsdk:"asset_deleted"`
	StorageID       types.String `tfsdk:"storage_id"`
	Kind            types.String `tfsdk:"kind"`
	Tier            types.String `tfsdk:"tier"`
	StartedAt       types.String `tfsdk:"started_at"`
	CompletedAt     types.String `tfsdk:"completed_at"`
	LogicalBytes    types.Int64  `tfsdk:"logical_bytes"`
	NewBytes        types.Int64  `tfsdk:"new_bytes"`
	StoredBytes     types.Int64  `tfsdk:"stored_bytes"`
	Files           types.Int64  `tfsdk:"files"`
	LegalHold       types.Bool   `tfsdk:"legal_hold"`
	RestorableUntil types.String `tfsdk:"restorable_until"`
	Reasons         types.List   `tfsdk:"reasons"`
	LogStart        types.String `tfsdk:"log_start"`
	LogEnd          types.String `tfsdk:"log_end"`
	Database        types.Object `tfsdk:"database"`
}

// pointDatabaseAttrTypes are the attributes of a point's database object.
var pointDatabaseAttrTypes = map[string]attr.Type{
	"converted": types.StringType, "system_id": types.StringType, "timeline": types.Int64Type,
	"start_lsn": types.StringType, "end_lsn": types.StringType, "partial": types.BoolType,
	"restore_points": types.ListType{ElemType: types.StringType},
	"verified":       types.ObjectType{AttrTypes: pointVerifiedAttrTypes},
}

// pointVerifiedAttrTypes are the attributes of a database point's
// verification.
var pointVerifiedAttrTypes = map[string]attr.Type{
	"ok": types.BoolType, "problem": types.StringType, "tables": types.Int64Type, "rows": types.Int64Type,
	"at": types.StringType,
}

var pointAttrTypes = map[string]attr.Type{
	"id": types.StringType, "asset_id": types.StringType, "asset_name": types.StringType, "asset_deleted": types.BoolType,
	"storage_id": types.StringType,
	"kind":       types.StringType, "tier": types.StringType,
	"started_at": types.StringType, "completed_at": types.StringType,
	"logical_bytes": types.Int64Type, "new_bytes": types.Int64Type, "stored_bytes": types.Int64Type,
	"files": types.Int64Type, "legal_hold": types.BoolType, "restorable_until": types.StringType,
	"reasons":   types.ListType{ElemType: types.StringType},
	"log_start": types.StringType, "log_end": types.StringType,
	"database": types.ObjectType{AttrTypes: pointDatabaseAttrTypes},
}

// Descriptions of a point's attributes, shared by both data sources.
var pointAttrDescs = map[string]string{
	"id":       "Identifier of the recovery point: what `haven_restore.point_id` takes.",
	"asset_id": "Id of the protected asset (such as a `haven_fileset`) the point was backed up from.",
	"asset_name": "Name of the asset the point was backed up from (a fileset's name, a protected VM's VM name), " +
		"also after the asset was destroyed.",
	"asset_deleted": "Whether the asset the point was backed up from was destroyed. Its points stay restorable " +
		"until their retention (the policy the asset was under) ends.",
	"storage_id":    "Id of the storage that holds the point.",
	"kind":          "Kind of backup: `full`, `incremental`, `differential` or `log`.",
	"tier":          "Storage tier the point's data is in: `warm` or `cold`.",
	"started_at":    "When the backup started, as an RFC 3339 time in UTC.",
	"completed_at":  "When the backup completed, as an RFC 3339 time in UTC. The point captures the data as it was between `started_at` and this time.",
	"logical_bytes": "Size of the data the point captures, before deduplication and compression.",
	"new_bytes":     "Bytes of data, before compression, that this backup found the storage did not hold yet.",
	"stored_bytes":  "Bytes this backup added to the storage, after deduplication, compression and encryption.",
	"files":         "Number of files in the point.",
	"legal_hold":    "Whether the point is on legal hold, which keeps it whatever the retention says.",
	"restorable_until": "When the policy's retention rules stop keeping the point, as an RFC 3339 time in UTC. " +
		"A legal hold, or a kept point that depends on it, keeps it longer. Null when only those keep it, or " +
		"before the server has applied retention to the point.",
	"reasons": "Why the point is kept: `daily`, `weekly`, `monthly`, `yearly`, `log`, `legal_hold`, or " +
		"`dependency:<id>` when a newer point builds on it. Empty before the server has applied retention to it.",
	"log_start": "For a log point, the start of the span of time its logs cover, as an RFC 3339 time in UTC; null for other points.",
	"log_end":   "For a log point, the end of the span of time its logs cover, as an RFC 3339 time in UTC; null for other points.",
	"database": "What a point of a `haven_database_set` records besides: its write-ahead log range, timeline, " +
		"named restore points and verification. Null for other points.",
}

// pointDatabaseDescs describe the attributes of a point's database object.
var pointDatabaseDescs = map[string]string{
	"converted": "Why a requested differential backup was taken as a full one (such as no full to build on); " +
		"null when it was taken as requested.",
	"system_id": "Database system identifier of the cluster backed up.",
	"timeline":  "Timeline the cluster was on.",
	"start_lsn": "First write-ahead log location the point holds: for a full or a differential, where the " +
		"replay that makes it consistent starts.",
	"end_lsn": "Last write-ahead log location the point holds: for a full or a differential, where it is consistent.",
	"partial": "Whether a log point's last segment is incomplete (a tail-log backup of a cluster that stopped).",
	"restore_points": "Names of the restore points (`pg_create_restore_point()`) in a log point's logs, " +
		"oldest first: what `haven_restore`'s `database.restore_point` takes.",
	"verified": "Result of the set's `verify_restore` for this point: null until it ran.",
}

// pointVerifiedDescs describe the attributes of a database point's
// verification.
var pointVerifiedDescs = map[string]string{
	"ok":      "Whether the point restored into a scratch cluster that started, passed `pg_amcheck` and had every table counted.",
	"problem": "What went wrong when `ok` is false.",
	"tables":  "Number of tables counted.",
	"rows":    "Number of rows counted over all tables.",
	"at":      "When the verification ran, as an RFC 3339 time in UTC.",
}

// pointTime renders a catalog time in UTC, to the nanosecond, so that a
// completed_at fed back into haven_recovery_point.at finds the same point.
func pointTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

func newPointModel(ctx context.Context, p *api.Point, diags *diag.Diagnostics) pointModel {
	reasons, d := types.ListValueFrom(ctx, types.StringType, append([]string{}, p.Reasons...))
	diags.Append(d...)
	until := types.StringNull()
	if p.RestorableUntil != nil {
		until = types.StringValue(pointTime(*p.RestorableUntil))
	}
	return pointModel{
		ID:              types.StringValue(p.ID),
		AssetID:         types.StringValue(p.AssetID),
		AssetName:       types.StringValue(p.AssetName),
		AssetDeleted:    types.BoolValue(p.AssetDeleted),
		StorageID:       types.StringValue(p.StorageID),
		Kind:            types.StringValue(p.Kind),
		Tier:            types.StringValue(p.Tier),
		StartedAt:       types.StringValue(pointTime(p.StartedAt)),
		CompletedAt:     types.StringValue(pointTime(p.CompletedAt)),
		LogicalBytes:    types.Int64Value(p.LogicalBytes),
		NewBytes:        types.Int64Value(p.NewBytes),
		StoredBytes:     types.Int64Value(p.StoredBytes),
		Files:           types.Int64Value(p.Files),
		LegalHold:       types.BoolValue(p.LegalHold),
		RestorableUntil: until,
		Reasons:         reasons,
		LogStart:        optTime(p.LogStart),
		LogEnd:          optTime(p.LogEnd),
		Database:        pointDatabaseValue(p.Database),
	}
}

func optTime(t *time.Time) types.String {
	if t == nil {
		return types.StringNull()
	}
	return types.StringValue(pointTime(*t))
}

// pointDatabaseValue is a point's database object, null for points of
// other assets than database sets.
func pointDatabaseValue(d *api.DatabasePoint) types.Object {
	if d == nil {
		return types.ObjectNull(pointDatabaseAttrTypes)
	}
	names := make([]attr.Value, len(d.RestorePoints))
	for i, rp := range d.RestorePoints {
		names[i] = types.StringValue(rp.Name)
	}
	verified := types.ObjectNull(pointVerifiedAttrTypes)
	if v := d.Verified; v != nil {
		at := types.StringNull()
		if !v.At.IsZero() {
			at = types.StringValue(pointTime(v.At))
		}
		verified = types.ObjectValueMust(pointVerifiedAttrTypes, map[string]attr.Value{
			"ok": types.BoolValue(v.OK), "problem": optString(v.Problem), "tables": types.Int64Value(int64(v.Tables)),
			"rows": types.Int64Value(v.Rows), "at": at,
		})
	}
	return types.ObjectValueMust(pointDatabaseAttrTypes, map[string]attr.Value{
		"converted": optString(d.Converted), "system_id": optString(d.SystemID), "timeline": types.Int64Value(int64(d.Timeline)),
		"start_lsn": optString(d.StartLSN), "end_lsn": optString(d.EndLSN), "partial": types.BoolValue(d.Partial),
		"restore_points": types.ListValueMust(types.StringType, names),
		"verified":       verified,
	})
}

// pointSchemaAttributes are a point's attributes, all computed.
func pointSchemaAttributes() map[string]schema.Attribute {
	return computedAttributes(pointAttrTypes, pointAttrDescs, map[string]map[string]string{
		"database": pointDatabaseDescs, "verified": pointVerifiedDescs,
	})
}

// computedAttributes builds computed attributes of the given types, with
// descriptions by name; nested holds the descriptions of the attributes
// of object-typed ones, by the object's name.
func computedAttributes(attrTypes map[string]attr.Type, descs map[string]string, nested map[string]map[string]string) map[string]schema.Attribute {
	out := map[string]schema.Attribute{}
	for name, t := range attrTypes {
		desc := descs[name]
		switch t := t.(type) {
		case types.ObjectType:
			out[name] = schema.SingleNestedAttribute{MarkdownDescription: desc, Computed: true,
				Attributes: computedAttributes(t.AttrTypes, nested[name], nested)}
		case types.ListType:
			out[name] = schema.ListAttribute{MarkdownDescription: desc, ElementType: t.ElemType, Computed: true}
		default:
			switch t {
			case types.StringType:
				out[name] = schema.StringAttribute{MarkdownDescription: desc, Computed: true}
			case types.Int64Type:
				out[name] = schema.Int64Attribute{MarkdownDescription: desc, Computed: true}
			case types.BoolType:
				out[name] = schema.BoolAttribute{MarkdownDescription: desc, Computed: true}
			}
		}
	}
	return out
}

func (d *recoveryPointsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_recovery_points"
}

func (d *recoveryPointsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	timeFilter := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{MarkdownDescription: desc, Optional: true, Validators: []validator.String{rfc3339Time()}}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists recovery points, newest first, optionally narrowed to one asset, a kind of " +
			"backup, a tier or a time range. Only points that are complete and not expired are listed. Use " +
			"`haven_recovery_point` to pick a single point to restore.",
		Attributes: map[string]schema.Attribute{
			"asset_id": schema.StringAttribute{
				MarkdownDescription: "Only points of this protected asset, such as `haven_fileset.docs.id`.",
				Optional:            true,
				Validators:          []validator.String{objectID("protected asset", "haven_fileset.docs.id")},
			},
			"kind": schema.StringAttribute{
				MarkdownDescription: "Only points of this kind: " + backquoteList(pointKinds) + ".",
				Optional:            true,
				Validators:          []validator.String{stringvalidator.OneOf(pointKinds...)},
			},
			"tier": schema.StringAttribute{
				MarkdownDescription: "Only points in this tier: " + backquoteList(pointTiers) + ".",
				Optional:            true,
				Validators:          []validator.String{stringvalidator.OneOf(pointTiers...)},
			},
			"created_after": timeFilter("Only points completed strictly after this RFC 3339 time, such as " +
				"`2026-03-01T00:00:00Z`."),
			"created_before": timeFilter("Only points completed strictly before this RFC 3339 time."),
			"limit": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf("Most points to list (the newest ones), from 1 to %d. Defaults to `%d`.",
					maxPointsLimit, defaultPointsLimit),
				Optional:   true,
				Validators: []validator.Int64{int64validator.Between(1, maxPointsLimit)},
			},
			"points": schema.ListNestedAttribute{
				MarkdownDescription: "The matching recovery points, newest (latest `completed_at`) first.",
				Computed:            true,
				NestedObject:        schema.NestedAttributeObject{Attributes: pointSchemaAttributes()},
			},
		},
	}
}

func (d *recoveryPointsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *recoveryPointsDataSource) ValidateConfig(ctx context.Context, req datasource.ValidateConfigRequest, resp *datasource.ValidateConfigResponse) {
	var cfg recoveryPointsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || !isSet(cfg.CreatedAfter) || !isSet(cfg.CreatedBefore) {
		return
	}
	after, err1 := time.Parse(time.RFC3339, cfg.CreatedAfter.ValueString())
	before, err2 := time.Parse(time.RFC3339, cfg.CreatedBefore.ValueString())
	if err1 == nil && err2 == nil && !after.Before(before) {
		resp.Diagnostics.AddAttributeError(path.Root("created_before"), "Empty time range",
			fmt.Sprintf("Attribute created_before (%s) must be later than created_after (%s): no point can match.",
				cfg.CreatedBefore.ValueString(), cfg.CreatedAfter.ValueString()))
	}
}

// pointQuery is a point listing with times to the nanosecond. The API
// takes whole seconds, so the server is asked for a range that covers the
// requested one and match drops what lies outside it.
type pointQuery struct {
	filter        api.PointFilter
	after, before *time.Time
	// atOrBefore, unlike before, includes the time itself.
	atOrBefore *time.Time
}

func (q *pointQuery) setAfter(t time.Time) {
	q.after = &t
	// The client sends whole seconds, truncating: completed_at > floor(t)
	// covers completed_at > t.
	q.filter.CreatedAfter = &t
}

func (q *pointQuery) setBefore(t time.Time, inclusive bool) {
	bound := t
	if inclusive {
		q.atOrBefore = &t
		bound = t.Truncate(time.Second).Add(time.Second)
	} else {
		q.before = &t
		if !bound.Truncate(time.Second).Equal(bound) {
			bound = bound.Truncate(time.Second).Add(time.Second)
		}
	}
	q.filter.CreatedBefore = &bound
}

func (q *pointQuery) match(p *api.Point) bool {
	c := p.CompletedAt
	return (q.after == nil || c.After(*q.after)) &&
		(q.before == nil || c.Before(*q.before)) &&
		(q.atOrBefore == nil || !c.After(*q.atOrBefore))
}

// find pages through the server's listing, newest first, until it has
// limit matching points or the listing ends.
func (q *pointQuery) find(ctx context.Context, c *api.Client, limit, pageSize int) ([]api.Point, error) {
	var out []api.Point
	token := ""
	// The points of the second after an upper bound come first in the
	// listing and are dropped: a few more per page saves a round trip.
	slack := 0
	if q.before != nil || q.atOrBefore != nil {
		slack = boundarySlack
	}
	for len(out) < limit {
		page, err := c.FindPoints(ctx, q.filter, token, min(limit-len(out)+slack, pageSize))
		if err != nil {
			return nil, err
		}
		for i := range page.Items {
			if q.match(&page.Items[i]) && len(out) < limit {
				out = append(out, page.Items[i])
			}
		}
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
	}
	return out, nil
}

// parseTime reads an argument the schema has already validated.
func parseTime(v types.String, attr string, diags *diag.Diagnostics) time.Time {
	t, err := time.Parse(time.RFC3339, v.ValueString())
	if err != nil {
		diags.AddAttributeError(path.Root(attr), "Invalid "+attr, err.Error())
	}
	return t
}

func (d *recoveryPointsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg recoveryPointsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	q := pointQuery{filter: api.PointFilter{
		AssetID: cfg.AssetID.ValueString(), Kind: cfg.Kind.ValueString(), Tier: cfg.Tier.ValueString(),
	}}
	if !cfg.CreatedAfter.IsNull() {
		q.setAfter(parseTime(cfg.CreatedAfter, "created_after", &resp.Diagnostics))
	}
	if !cfg.CreatedBefore.IsNull() {
		q.setBefore(parseTime(cfg.CreatedBefore, "created_before", &resp.Diagnostics), false)
	}
	limit := int64(defaultPointsLimit)
	if !cfg.Limit.IsNull() {
		limit = cfg.Limit.ValueInt64()
	}
	if resp.Diagnostics.HasError() {
		return
	}
	pageSize := maxPointsPage
	if d.pageSize > 0 {
		pageSize = d.pageSize
	}
	points, err := q.find(ctx, d.client, int(limit), pageSize)
	if err != nil {
		addAPIError(&resp.Diagnostics, "Could not list recovery points", err, pointFilterFields)
		return
	}
	models := make([]pointModel, len(points))
	for i := range points {
		models[i] = newPointModel(ctx, &points[i], &resp.Diagnostics)
	}
	list, diags := types.ListValueFrom(ctx, types.ObjectType{AttrTypes: pointAttrTypes}, models)
	resp.Diagnostics.Append(diags...)
	cfg.Points = list
	resp.Diagnostics.Append(resp.State.Set(ctx, &cfg)...)
}
