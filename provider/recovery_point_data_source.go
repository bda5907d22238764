package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ datasource.DataSource              = (*recoveryPointDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*recoveryPointDataSource)(nil)
)

// NewRecoveryPointDataSource is the haven_recovery_point data source: the
// latest recovery point of an asset, or the latest one at or before a
// time, for haven_restore to restore.
func NewRecoveryPointDataSource() datasource.DataSource {
	return &recoveryPointDataSource{}
}

type recoveryPointDataSource struct {
	client *api.Client
}

type recoveryPointModel struct {
	At              types.String `tfsdk:"at"`
	CoversTime      types.String `tfsdk:"covers_time"`
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

func (d *recoveryPointDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_recovery_point"
}

func (d *recoveryPointDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := pointSchemaAttributes()
	attrs["asset_id"] = schema.StringAttribute{
		MarkdownDescription: "Id of the protected asset whose point to find, such as `haven_fileset.docs.id`.",
		Required:            true,
		Validators:          []validator.String{objectID("protected asset", "haven_fileset.docs.id")},
	}
	attrs["kind"] = schema.StringAttribute{
		MarkdownDescription: "Only consider points of this kind: " + backquoteList(pointKinds) + ". When unset, " +
			"any kind, and the attribute holds the kind of the point found.",
		Optional:   true,
		Computed:   true,
		Validators: []validator.String{stringvalidator.OneOf(pointKinds...)},
	}
	attrs["at"] = schema.StringAttribute{
		MarkdownDescription: "Find the latest point that completed at or before this RFC 3339 time, such as " +
			"`2026-03-01T18:00:00Z`: the state the data was in at that time. Unset finds the latest point. " +
			"Conflicts with `covers_time`.",
		Optional: true,
		Validators: []validator.String{rfc3339Time(),
			stringvalidator.ConflictsWith(path.MatchRoot("covers_time"))},
	}
	attrs["covers_time"] = schema.StringAttribute{
		MarkdownDescription: "Find the point that covers this RFC 3339 time, such as `2026-03-01T17:59:00Z`: " +
			"the point a restore to that instant starts from. That is a log point whose logs span it " +
			"(`log_start` to `log_end`, both included) if there is one, the newest of them if several " +
			"do; otherwise the latest point that completed at or before it, as with `at`. Give the same time " +
			"to `haven_restore`'s `database.point_in_time` to recover a database set to that instant.",
		Optional:   true,
		Validators: []validator.String{rfc3339Time()},
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Finds one recovery point of an asset: the latest, the latest that completed at " +
			"or before `at`, or the one that covers `covers_time` (for a database set, the log point whose " +
			"logs span that instant), optionally of one `kind`. Reading fails if no point matches, so a plan " +
			"never restores from nothing.\n\n" +
			"Data sources are read again on every plan. Without `at` or `covers_time`, a backup that completes " +
			"between two plans becomes the latest point, and a `haven_restore` whose `point_id` comes from " +
			"here is planned to restore again. Set `at` or `covers_time` to pin the point.",
		Attributes: attrs,
	}
}

func (d *recoveryPointDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *recoveryPointDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg recoveryPointModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	asset, kind := cfg.AssetID.ValueString(), cfg.Kind.ValueString()
	q := pointQuery{filter: api.PointFilter{AssetID: asset, Kind: kind}}
	var covers *time.Time
	switch {
	case !cfg.At.IsNull():
		q.setBefore(parseTime(cfg.At, "at", &resp.Diagnostics), true)
	case !cfg.CoversTime.IsNull():
		t := parseTime(cfg.CoversTime, "covers_time", &resp.Diagnostics)
		covers = &t
		q.setBefore(t, true)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	var points []api.Point
	var err error
	if covers != nil && (kind == "" || kind == api.BackupLog) {
		points, err = logPointsCovering(ctx, d.client, asset, *covers)
	}
	if err == nil && len(points) == 0 {
		points, err = q.find(ctx, d.client, 1, maxPointsPage)
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, "Could not look up recovery points of asset "+asset, err,
			map[string]bool{"asset_id": true, "kind": true})
		return
	}
	if len(points) == 0 {
		what := "recovery point"
		if kind != "" {
			what = kind + " recovery point"
		}
		detail := fmt.Sprintf("No %s exists for asset %s.", what, asset)
		attr := path.Root("asset_id")
		switch {
		case !cfg.At.IsNull():
			detail = fmt.Sprintf("No %s exists for asset %s that completed at or before %s.", what, asset, cfg.At.ValueString())
			attr = path.Root("at")
		case covers != nil:
			detail = fmt.Sprintf("No %s exists for asset %s that covers %s: no log point spans it, and no point "+
				"completed at or before it.", what, asset, cfg.CoversTime.ValueString())
			attr = path.Root("covers_time")
		}
		resp.Diagnostics.AddAttributeError(attr, "No matching recovery point", detail+
			" Points become visible once their backup has completed, and expired points are gone.")
		return
	}
	p := newPointModel(ctx, &points[0], &resp.Diagnostics)
	state := recoveryPointModel{
		At: cfg.At, CoversTime: cfg.CoversTime, ID: p.ID, AssetID: cfg.AssetID, AssetName: p.AssetName, AssetDeleted: p.AssetDeleted,
		StorageID: p.StorageID, Kind: p.Kind, Tier: p.Tier,
		StartedAt: p.StartedAt, CompletedAt: p.CompletedAt, LogicalBytes: p.LogicalBytes, NewBytes: p.NewBytes,
		StoredBytes: p.StoredBytes, Files: p.Files, LegalHold: p.LegalHold, RestorableUntil: p.RestorableUntil,
		Reasons: p.Reasons, LogStart: p.LogStart, LogEnd: p.LogEnd, Database: p.Database,
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// logPointsCovering finds the newest log point of an asset whose span
// (log_start to log_end, both included) holds t, as a list of one point or
// none. The server filters points by completion time only, and a log
// point completes after the end of its span: the log points completed at
// or after t are listed (newest first) and their spans looked at here.
func logPointsCovering(ctx context.Context, c *api.Client, asset string, t time.Time) ([]api.Point, error) {
	q := pointQuery{filter: api.PointFilter{AssetID: asset, Kind: api.BackupLog}}
	// The server takes whole seconds and compares strictly: a bound a
	// second early keeps a point completed at t itself.
	q.setAfter(t.Truncate(time.Second).Add(-time.Second))
	token := ""
	for {
		page, err := c.FindPoints(ctx, q.filter, token, maxPointsPage)
		if err != nil {
			return nil, err
		}
		for i := range page.Items {
			p := &page.Items[i]
			if p.LogStart != nil && p.LogEnd != nil && !t.Before(*p.LogStart) && !t.After(*p.LogEnd) {
				return []api.Point{*p}, nil
			}
		}
		if page.NextPageToken == "" {
			return nil, nil
		}
		token = page.NextPageToken
	}
}
