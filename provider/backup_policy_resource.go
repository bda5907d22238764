package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/objectvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

var (
	_ resource.Resource                   = (*backupPolicyResource)(nil)
	_ resource.ResourceWithConfigure      = (*backupPolicyResource)(nil)
	_ resource.ResourceWithImportState    = (*backupPolicyResource)(nil)
	_ resource.ResourceWithValidateConfig = (*backupPolicyResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*backupPolicyResource)(nil)
)

// NewBackupPolicyResource is the haven_backup_policy resource: when backups
// run, how long recovery points are kept and when they move between tiers.
func NewBackupPolicyResource() resource.Resource {
	return &backupPolicyResource{}
}

type backupPolicyResource struct {
	client *api.Client
}

// policyModel is shared by the resource and the data source, whose schemas
// have the same attribute names and types. The four nested objects are kept
// as types.Object so that unknown values during validation and planning do
// not trip up the conversion.
type policyModel struct {
	ID                       types.String `tfsdk:"id"`
	Version                  types.Int64  `tfsdk:"version"`
	Name                     types.String `tfsdk:"name"`
	Description              types.String `tfsdk:"description"`
	Timezone                 types.String `tfsdk:"timezone"`
	Full                     types.Object `tfsdk:"full"`
	Incremental              types.Object `tfsdk:"incremental"`
	Retention                types.Object `tfsdk:"retention"`
	Tiering                  types.Object `tfsdk:"tiering"`
	LogBackupIntervalMinutes types.Int64  `tfsdk:"log_backup_interval_minutes"`
	WindowHours              types.Int64  `tfsdk:"window_hours"`
	BandwidthMbps            types.Int64  `tfsdk:"bandwidth_mbps"`
	AppConsistent            types.Bool   `tfsdk:"app_consistent"`
	PreFreezeScript          types.String `tfsdk:"pre_freeze_script"`
	PostThawScript           types.String `tfsdk:"post_thaw_script"`
	ScriptTimeoutSeconds     types.Int64  `tfsdk:"script_timeout_seconds"`
	CBT                      types.Bool   `tfsdk:"cbt"`
}

type fullModel struct {
	DaysOfWeek types.Set    `tfsdk:"days_of_week"`
	DayOfMonth types.Int64  `tfsdk:"day_of_month"`
	At         types.String `tfsdk:"at"`
}

type incrementalModel struct {
	DaysOfWeek types.Set    `tfsdk:"days_of_week"`
	At         types.String `tfsdk:"at"`
	EveryHours types.Int64  `tfsdk:"every_hours"`
}

type retentionModel struct {
	DailyDays     types.Int64 `tfsdk:"daily_days"`
	WeeklyWeeks   types.Int64 `tfsdk:"weekly_weeks"`
	MonthlyMonths types.Int64 `tfsdk:"monthly_months"`
	YearlyYears   types.Int64 `tfsdk:"yearly_years"`
	LogDays       types.Int64 `tfsdk:"log_days"`
}

type tieringModel struct {
	WarmDays      types.Int64 `tfsdk:"warm_days"`
	ColdAfterDays types.Int64 `tfsdk:"cold_after_days"`
}

var daysType = types.SetType{ElemType: types.StringType}

var (
	fullAttrTypes = map[string]attr.Type{
		"days_of_week": daysType, "day_of_month": types.Int64Type, "at": types.StringType,
	}
	incrementalAttrTypes = map[string]attr.Type{
		"days_of_week": daysType, "at": types.StringType, "every_hours": types.Int64Type,
	}
	retentionAttrTypes = map[string]attr.Type{
		"daily_days": types.Int64Type, "weekly_weeks": types.Int64Type, "monthly_months": types.Int64Type,
		"yearly_years": types.Int64Type, "log_days": types.Int64Type,
	}
	tieringAttrTypes = map[string]attr.Type{
		"warm_days": types.Int64Type, "cold_after_days": types.Int64Type,
	}
)

// Descriptions shared by the resource and data source schemas.
const (
	descFull = "When full backups run: on `days_of_week` or on `day_of_month`, at `at`. A full backup " +
		"reads all the data again (deduplication still avoids storing what is unchanged)."
	descIncremental = "When incremental backups run between full ones: on `days_of_week` at `at`, or every " +
		"`every_hours` hours. (Database workloads, on the roadmap, will use it for differential backups.)"
	descRetention = "How long recovery points are kept, grandfather-father-son style. A point is kept as long " +
		"as any rule keeps it; `0` disables a rule. At least one of `daily_days`, `weekly_weeks`, " +
		"`monthly_months` and `yearly_years` must be positive."
	descTiering = "When kept recovery points move between storage tiers. A point is in the warm tier from " +
		"creation; with `cold_after_days` it moves to the storage's `cold_storage_class` that many days " +
		"after creation."
	descDaysOfWeek  = "Days of the week, as lower-case three-letter names: `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`."
	descAt          = "Start time as `HH:MM` on a 24-hour clock, in the policy's `timezone`."
	descEveryHours  = "Run every this many hours (1 to 24) instead of on `days_of_week` at `at`."
	descDayOfMonth  = "Day of the month (1 to 31)."
	descLogInterval = "Minutes between transaction-log backups of databases (5 to 1440); `0` disables them. " +
		"Requires `retention.log_days`. Database workloads are on the roadmap: the value is validated and " +
		"stored, and no job reads it yet."
	descWindowHours   = "Length of the backup window in hours from the scheduled start (at most 168); `0` means no window."
	descBandwidth     = "Upload bandwidth cap of scheduled backups in megabits per second; `0` is unlimited. The cap is the policy's: its scheduled backups running at once share it, whether they run on the server host, from VMs or through agents. Each server replica holds it for the uploads it handles, so replicas handling one policy's uploads at once may together reach a multiple of it. On-demand backups ignore it."
	descAppConsistent = "Take application-consistent snapshots, quiescing applications in the guest, rather than crash-consistent ones."
	descPreFreeze     = "Script run in the guest before the snapshot is taken."
	descPostThaw      = "Script run in the guest after the snapshot is taken."
	descScriptTimeout = "Seconds a pre-freeze or post-thaw script may run. Defaults to `600` when a script is set; unset (null) without scripts."
	descCBT           = "Use changed block tracking for VM disks, so incremental backups read only changed blocks."
)

func (r *backupPolicyResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_backup_policy"
}

func (r *backupPolicyResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	int64Default := func(desc string, def int64, v ...validator.Int64) schema.Int64Attribute {
		return schema.Int64Attribute{
			MarkdownDescription: fmt.Sprintf("%s Defaults to `%d`.", desc, def),
			Optional:            true, Computed: true, Default: int64default.StaticInt64(def), Validators: v,
		}
	}
	days := func(desc string) schema.SetAttribute {
		return schema.SetAttribute{
			MarkdownDescription: desc,
			ElementType:         types.StringType,
			Optional:            true,
			Validators: []validator.Set{
				setvalidator.SizeAtLeast(1),
				setvalidator.ValueStringsAre(weekday()),
			},
		}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A backup policy says when backups run (a full schedule and an optional " +
			"incremental one), how long recovery points are kept (`retention`), when they move to colder " +
			"storage (`tiering`), and how the data is captured. Protected workloads refer to a policy; " +
			"changing the policy changes their schedule from the next run on.\n\n" +
			"When a plan changes the `retention` or `tiering` of an existing policy, or its `timezone`, the " +
			"provider asks the server what the change would do to the recovery points the policy already " +
			"keeps. If points would expire or move to the cold tier, the plan shows a warning such as " +
			"`this change expires 37 recovery points on 12 assets (oldest 2026-03-01); 5 move to cold`. " +
			"Nothing expires before apply: the server applies the new retention as soon as the policy is " +
			"updated, and expired points cannot be restored. If the server cannot say, the plan warns that " +
			"the preview was unavailable and goes on.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Identifier the server gave the policy.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			// version changes on every write: no UseStateForUnknown.
			"version": schema.Int64Attribute{
				MarkdownDescription: "Version of the policy on the server; it increases by one on every change.",
				Computed:            true,
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Unique name of the policy: letters, digits, `.`, `_` and `-`, "+
					"starting with a letter or digit, at most %d characters. Can be changed in place.", api.MaxNameLength),
				Required:   true,
				Validators: objectName(),
			},
			"description": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Free text, at most %d characters.", api.MaxDescriptionLength),
				Optional:            true,
				Validators:          []validator.String{stringvalidator.LengthBetween(1, api.MaxDescriptionLength)},
			},
			"timezone": schema.StringAttribute{
				MarkdownDescription: "IANA timezone in which the schedules' `at` times are read, such as " +
					"`Europe/Paris` or `UTC`.",
				Required:   true,
				Validators: []validator.String{ianaTimezone()},
			},
			"log_backup_interval_minutes": int64Default(descLogInterval, 0,
				int64validator.Any(int64validator.OneOf(0), int64validator.Between(5, 1440))),
			"window_hours":   int64Default(descWindowHours, 0, int64validator.Between(0, api.MaxWindowHours)),
			"bandwidth_mbps": int64Default(descBandwidth, 0, int64validator.AtLeast(0)),
			"app_consistent": schema.BoolAttribute{
				MarkdownDescription: descAppConsistent + " Defaults to `false`.",
				Optional:            true, Computed: true, Default: booldefault.StaticBool(false),
			},
			"pre_freeze_script": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("%s At most %d bytes.", descPreFreeze, api.MaxScriptLength),
				Optional:            true,
				Validators:          []validator.String{stringvalidator.LengthBetween(1, api.MaxScriptLength)},
			},
			"post_thaw_script": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("%s At most %d bytes.", descPostThaw, api.MaxScriptLength),
				Optional:            true,
				Validators:          []validator.String{stringvalidator.LengthBetween(1, api.MaxScriptLength)},
			},
			"script_timeout_seconds": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf("%s At most %d.", descScriptTimeout, api.MaxScriptTimeout),
				Optional:            true,
				Computed:            true,
				// 0 is what the server stores for "not set", and it turns
				// that into 600 when a script is present, so an explicit 0
				// would never read back as written; without scripts the
				// attribute reads back null.
				Validators:    []validator.Int64{int64validator.Between(1, api.MaxScriptTimeout)},
				PlanModifiers: []planmodifier.Int64{scriptTimeoutDefault{}},
			},
			"cbt": schema.BoolAttribute{
				MarkdownDescription: descCBT + " Defaults to `true`.",
				Optional:            true, Computed: true, Default: booldefault.StaticBool(true),
			},
		},
		Blocks: map[string]schema.Block{
			"full": schema.SingleNestedBlock{
				MarkdownDescription: descFull + " Required.",
				Validators:          []validator.Object{objectvalidator.IsRequired()},
				Attributes: map[string]schema.Attribute{
					"days_of_week": days(descDaysOfWeek + " Conflicts with `day_of_month`."),
					"day_of_month": schema.Int64Attribute{
						MarkdownDescription: descDayOfMonth + " Conflicts with `days_of_week`.",
						Optional:            true,
						Validators:          []validator.Int64{int64validator.Between(1, 31)},
					},
					"at": schema.StringAttribute{
						MarkdownDescription: descAt,
						Required:            true,
						Validators:          []validator.String{timeOfDay()},
					},
				},
			},
			"incremental": schema.SingleNestedBlock{
				MarkdownDescription: descIncremental,
				Attributes: map[string]schema.Attribute{
					"days_of_week": days(descDaysOfWeek + " Requires `at`."),
					"at": schema.StringAttribute{
						MarkdownDescription: descAt + " Requires `days_of_week`.",
						Optional:            true,
						Validators:          []validator.String{timeOfDay()},
					},
					"every_hours": schema.Int64Attribute{
						MarkdownDescription: descEveryHours,
						Optional:            true,
						Validators: []validator.Int64{
							int64validator.Between(1, 24),
							int64validator.ConflictsWith(
								path.MatchRelative().AtParent().AtName("days_of_week"),
								path.MatchRelative().AtParent().AtName("at")),
						},
					},
				},
			},
			"retention": schema.SingleNestedBlock{
				MarkdownDescription: descRetention + " Required.",
				Validators:          []validator.Object{objectvalidator.IsRequired()},
				Attributes: map[string]schema.Attribute{
					"daily_days": int64Default("Keep a daily recovery point for this many days.", 0,
						int64validator.Between(0, api.MaxRetentionDays)),
					"weekly_weeks": int64Default("Keep a weekly recovery point for this many weeks.", 0,
						int64validator.Between(0, api.MaxRetentionWeeks)),
					"monthly_months": int64Default("Keep a monthly recovery point for this many months.", 0,
						int64validator.Between(0, api.MaxRetentionMonths)),
					"yearly_years": int64Default("Keep a yearly recovery point for this many years.", 0,
						int64validator.Between(0, api.MaxRetentionYears)),
					"log_days": int64Default("Keep database transaction-log backups for this many days (database workloads are on the roadmap: no point is a log yet).", 0,
						int64validator.Between(0, api.MaxRetentionDays)),
				},
			},
			"tiering": schema.SingleNestedBlock{
				MarkdownDescription: descTiering,
				Attributes: map[string]schema.Attribute{
					"warm_days": int64Default("Days a recovery point stays in the warm tier at least.",
						api.DefaultWarmDays, int64validator.Between(1, api.MaxRetentionDays)),
					"cold_after_days": schema.Int64Attribute{
						MarkdownDescription: "Days after creation at which a kept recovery point moves to the cold " +
							"tier; at least `warm_days`. Unset means never.",
						Optional:   true,
						Validators: []validator.Int64{int64validator.Between(1, api.MaxRetentionDays)},
					},
				},
			},
		},
	}
}

func (r *backupPolicyResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig checks the rules that tie several attributes together, the
// same ones PolicySpec.Validate applies on the server, so that they fail at
// plan time. Unknown values are skipped: apply time will tell.
func (r *backupPolicyResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg policyModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	opts := basetypes.ObjectAsOptions{}

	if isSet(cfg.Full) {
		var f fullModel
		resp.Diagnostics.Append(cfg.Full.As(ctx, &f, opts)...)
		switch {
		case isSet(f.DaysOfWeek) && isSet(f.DayOfMonth):
			resp.Diagnostics.AddAttributeError(path.Root("full").AtName("day_of_month"), "Conflicting full schedule",
				"Attribute full.day_of_month conflicts with full.days_of_week: give one or the other.")
		case f.DaysOfWeek.IsNull() && f.DayOfMonth.IsNull():
			resp.Diagnostics.AddAttributeError(path.Root("full").AtName("days_of_week"), "Incomplete full schedule",
				"Attribute full.days_of_week or full.day_of_month is required.")
		}
	}

	if isSet(cfg.Incremental) {
		var inc incrementalModel
		resp.Diagnostics.Append(cfg.Incremental.As(ctx, &inc, opts)...)
		if inc.EveryHours.IsNull() {
			if inc.DaysOfWeek.IsNull() {
				resp.Diagnostics.AddAttributeError(path.Root("incremental").AtName("days_of_week"), "Incomplete incremental schedule",
					"Attribute incremental.days_of_week (with incremental.at) or incremental.every_hours is required.")
			}
			if inc.At.IsNull() {
				resp.Diagnostics.AddAttributeError(path.Root("incremental").AtName("at"), "Incomplete incremental schedule",
					"Attribute incremental.at is required with incremental.days_of_week.")
			}
		}
	}

	if isSet(cfg.Retention) {
		var ret retentionModel
		resp.Diagnostics.Append(cfg.Retention.As(ctx, &ret, opts)...)
		rules := []types.Int64{ret.DailyDays, ret.WeeklyWeeks, ret.MonthlyMonths, ret.YearlyYears}
		allKnown, sum := true, int64(0)
		for _, v := range rules {
			allKnown = allKnown && !v.IsUnknown()
			sum += v.ValueInt64()
		}
		if allKnown && sum == 0 {
			resp.Diagnostics.AddAttributeError(path.Root("retention").AtName("daily_days"), "No retention rule",
				"At least one of retention.daily_days, retention.weekly_weeks, retention.monthly_months or "+
					"retention.yearly_years must be positive, or every recovery point would expire at once.")
		}
		if cfg.LogBackupIntervalMinutes.ValueInt64() > 0 && !ret.LogDays.IsUnknown() && ret.LogDays.ValueInt64() == 0 {
			resp.Diagnostics.AddAttributeError(path.Root("retention").AtName("log_days"), "Missing log retention",
				"Attribute retention.log_days must be positive when log_backup_interval_minutes is set.")
		}
	} else if cfg.LogBackupIntervalMinutes.ValueInt64() > 0 {
		resp.Diagnostics.AddAttributeError(path.Root("retention").AtName("log_days"), "Missing log retention",
			"Attribute retention.log_days must be positive when log_backup_interval_minutes is set.")
	}

	if isSet(cfg.Tiering) {
		var t tieringModel
		resp.Diagnostics.Append(cfg.Tiering.As(ctx, &t, opts)...)
		warm := int64(api.DefaultWarmDays)
		if !t.WarmDays.IsNull() {
			warm = t.WarmDays.ValueInt64()
		}
		if isSet(t.ColdAfterDays) && !t.WarmDays.IsUnknown() && t.ColdAfterDays.ValueInt64() < warm {
			resp.Diagnostics.AddAttributeError(path.Root("tiering").AtName("cold_after_days"), "Invalid tiering",
				fmt.Sprintf("Attribute tiering.cold_after_days must be at least tiering.warm_days (%d), got %d.",
					warm, t.ColdAfterDays.ValueInt64()))
		}
	}
}

// previewTimeout bounds the retention preview: it is advice, and a slow
// server must not hold up the plan for long.
const previewTimeout = time.Minute

// ModifyPlan warns about the recovery points that a change of retention,
// tiering or timezone would expire or move to cold storage. The warning
// has to come at plan time: the server applies the new retention as soon
// as the policy is updated, and an expired point cannot be restored. The
// preview is only advice, so failing to get one never fails the plan.
func (r *backupPolicyResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() || req.Plan.Raw.IsNull() || r.client == nil {
		return
	}
	var plan, state policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if plan.Retention.Equal(state.Retention) && plan.Tiering.Equal(state.Tiering) && plan.Timezone.Equal(state.Timezone) {
		return
	}
	name := state.Name.ValueString()
	unavailable := func(why string) {
		resp.Diagnostics.AddWarning("Retention preview unavailable",
			fmt.Sprintf("Could not preview what the new retention of backup policy %q expires: %s.\n\n"+
				"Applying the change expires at once every recovery point that the new retention no longer keeps. "+
				"Check the change before applying it.", name, why))
	}
	spec, diags := plan.spec(ctx)
	if !fullyKnown(ctx, plan.Retention, plan.Tiering, plan.Timezone) || diags.HasError() {
		unavailable("the policy depends on values that are only known after apply")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, previewTimeout)
	defer cancel()
	preview, err := r.client.PreviewRetention(ctx, state.ID.ValueString(), spec)
	var answer *api.Error
	switch {
	case errors.As(err, &answer):
		unavailable("the Haven server answered: " + answer.Error())
		return
	case err != nil:
		unavailable("could not reach the Haven server: " + err.Error())
		return
	}
	if preview.Expiring == 0 && preview.ToCold == 0 {
		return
	}
	summary := "Retention change expires recovery points"
	if preview.Expiring == 0 {
		summary = "Retention change moves recovery points to cold storage"
	}
	resp.Diagnostics.AddWarning(summary,
		fmt.Sprintf("Backup policy %q: %s.\n\nNothing changes before apply. Once the policy is updated, the "+
			"server applies the new retention at once: expired points cannot be restored, and restoring "+
			"from the cold tier can take longer.", name, preview.Summary()))
}

// fullyKnown reports whether values hold no unknown, however deeply nested.
func fullyKnown(ctx context.Context, vals ...attr.Value) bool {
	for _, v := range vals {
		tv, err := v.ToTerraformValue(ctx)
		if err != nil || !tv.IsFullyKnown() {
			return false
		}
	}
	return true
}

// spec turns a fully known plan into the API's request.
func (m *policyModel) spec(ctx context.Context) (api.PolicySpec, diag.Diagnostics) {
	var diags diag.Diagnostics
	opts := basetypes.ObjectAsOptions{UnhandledNullAsEmpty: true}
	s := api.PolicySpec{
		Name:                     m.Name.ValueString(),
		Description:              m.Description.ValueString(),
		Timezone:                 m.Timezone.ValueString(),
		LogBackupIntervalMinutes: int(m.LogBackupIntervalMinutes.ValueInt64()),
		WindowHours:              int(m.WindowHours.ValueInt64()),
		BandwidthMbps:            int(m.BandwidthMbps.ValueInt64()),
		AppConsistent:            m.AppConsistent.ValueBool(),
		PreFreezeScript:          m.PreFreezeScript.ValueString(),
		PostThawScript:           m.PostThawScript.ValueString(),
		ScriptTimeoutSeconds:     int(m.ScriptTimeoutSeconds.ValueInt64()),
		CBT:                      m.CBT.ValueBoolPointer(),
	}
	var f fullModel
	diags.Append(m.Full.As(ctx, &f, opts)...)
	s.Full = api.FullSchedule{DayOfMonth: int(f.DayOfMonth.ValueInt64()), At: f.At.ValueString()}
	diags.Append(f.DaysOfWeek.ElementsAs(ctx, &s.Full.DaysOfWeek, false)...)

	if !m.Incremental.IsNull() {
		var inc incrementalModel
		diags.Append(m.Incremental.As(ctx, &inc, opts)...)
		s.Incremental = &api.IncrementalSchedule{At: inc.At.ValueString(), EveryHours: int(inc.EveryHours.ValueInt64())}
		diags.Append(inc.DaysOfWeek.ElementsAs(ctx, &s.Incremental.DaysOfWeek, false)...)
	}

	var ret retentionModel
	diags.Append(m.Retention.As(ctx, &ret, opts)...)
	s.Retention = api.Retention{
		DailyDays:     int(ret.DailyDays.ValueInt64()),
		WeeklyWeeks:   int(ret.WeeklyWeeks.ValueInt64()),
		MonthlyMonths: int(ret.MonthlyMonths.ValueInt64()),
		YearlyYears:   int(ret.YearlyYears.ValueInt64()),
		LogDays:       int(ret.LogDays.ValueInt64()),
	}

	if !m.Tiering.IsNull() {
		var t tieringModel
		diags.Append(m.Tiering.As(ctx, &t, opts)...)
		s.Tiering.WarmDays = int(t.WarmDays.ValueInt64())
		if !t.ColdAfterDays.IsNull() {
			c := int(t.ColdAfterDays.ValueInt64())
			s.Tiering.ColdAfterDays = &c
		}
	}
	return s, diags
}

// fill copies what the server holds into the model. keepDefaultTiering
// tells whether a tiering equal to the server's defaults is shown as a
// block; a resource whose configuration has no tiering block passes false,
// so that the defaults the server filled in do not show up as a change.
func (m *policyModel) fill(ctx context.Context, p *api.Policy, keepDefaultTiering bool) diag.Diagnostics {
	var diags diag.Diagnostics
	add := func(v types.Object, d diag.Diagnostics) types.Object {
		diags.Append(d...)
		return v
	}
	m.ID = types.StringValue(p.ID)
	m.Version = types.Int64Value(p.Version)
	m.Name = types.StringValue(p.Name)
	m.Description = optString(p.Description)
	m.Timezone = types.StringValue(p.Timezone)
	m.LogBackupIntervalMinutes = types.Int64Value(int64(p.LogBackupIntervalMinutes))
	m.WindowHours = types.Int64Value(int64(p.WindowHours))
	m.BandwidthMbps = types.Int64Value(int64(p.BandwidthMbps))
	m.AppConsistent = types.BoolValue(p.AppConsistent)
	m.PreFreezeScript = optString(p.PreFreezeScript)
	m.PostThawScript = optString(p.PostThawScript)
	// The server stores 0 when there is no script; that reads back as
	// unset, because 0 is not a value the attribute accepts (a generated
	// import configuration would fail its own validation).
	m.ScriptTimeoutSeconds = optInt(p.ScriptTimeoutSeconds)
	// The server always stores cbt; nil only from a server predating it.
	m.CBT = types.BoolValue(p.CBT == nil || *p.CBT)

	m.Full = add(types.ObjectValueFrom(ctx, fullAttrTypes, fullModel{
		DaysOfWeek: days(ctx, p.Full.DaysOfWeek, &diags),
		DayOfMonth: optInt(p.Full.DayOfMonth),
		At:         types.StringValue(p.Full.At),
	}))

	m.Incremental = types.ObjectNull(incrementalAttrTypes)
	if inc := p.Incremental; inc != nil {
		m.Incremental = add(types.ObjectValueFrom(ctx, incrementalAttrTypes, incrementalModel{
			DaysOfWeek: days(ctx, inc.DaysOfWeek, &diags),
			At:         optString(inc.At),
			EveryHours: optInt(inc.EveryHours),
		}))
	}

	m.Retention = add(types.ObjectValueFrom(ctx, retentionAttrTypes, retentionModel{
		DailyDays:     types.Int64Value(int64(p.Retention.DailyDays)),
		WeeklyWeeks:   types.Int64Value(int64(p.Retention.WeeklyWeeks)),
		MonthlyMonths: types.Int64Value(int64(p.Retention.MonthlyMonths)),
		YearlyYears:   types.Int64Value(int64(p.Retention.YearlyYears)),
		LogDays:       types.Int64Value(int64(p.Retention.LogDays)),
	}))

	m.Tiering = types.ObjectNull(tieringAttrTypes)
	isDefault := p.Tiering.WarmDays == api.DefaultWarmDays && p.Tiering.ColdAfterDays == nil
	if keepDefaultTiering || !isDefault {
		cold := types.Int64Null()
		if p.Tiering.ColdAfterDays != nil {
			cold = types.Int64Value(int64(*p.Tiering.ColdAfterDays))
		}
		m.Tiering = add(types.ObjectValueFrom(ctx, tieringAttrTypes, tieringModel{
			WarmDays:      types.Int64Value(int64(p.Tiering.WarmDays)),
			ColdAfterDays: cold,
		}))
	}
	return diags
}

func days(ctx context.Context, d []string, diags *diag.Diagnostics) types.Set {
	if len(d) == 0 {
		return types.SetNull(types.StringType)
	}
	v, dd := types.SetValueFrom(ctx, types.StringType, d)
	diags.Append(dd...)
	return v
}

func optInt(n int) types.Int64 {
	if n == 0 {
		return types.Int64Null()
	}
	return types.Int64Value(int64(n))
}

func (r *backupPolicyResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec, diags := plan.spec(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not create backup policy "+spec.Name, &plan, p, err,
		func(m *policyModel, o *api.Policy) diag.Diagnostics { return m.fill(ctx, o, !m.Tiering.IsNull()) })
}

func (r *backupPolicyResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readResource(ctx, req, resp, "backup policy", func(m *policyModel) string { return m.ID.ValueString() }, r.client.Policies().Get,
		func(m *policyModel, o *api.Policy) diag.Diagnostics {
			// On import the prior tiering is null too, so an imported policy
			// with default tiering matches a configuration without a tiering block.
			return m.fill(ctx, o, !m.Tiering.IsNull())
		})
}

func (r *backupPolicyResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec, diags := plan.spec(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	p, err := r.client.Policies().Update(ctx, state.ID.ValueString(), state.Version.ValueInt64(), api.PolicyRequest{PolicySpec: spec})
	saveWrite(ctx, &resp.Diagnostics, &resp.State, req.Plan.Schema, "Could not update backup policy "+spec.Name, &plan, p, err,
		func(m *policyModel, o *api.Policy) diag.Diagnostics { return m.fill(ctx, o, !m.Tiering.IsNull()) })
}

func (r *backupPolicyResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deleteResource(ctx, req, resp, "backup policy", func(m *policyModel) (string, string) { return m.ID.ValueString(), m.Name.ValueString() },
		r.client.Policies().Delete)
}

// ImportState takes an id or a name; Read replaces a name with the real id.
func (r *backupPolicyResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// scriptTimeoutDefault plans the timeout the server will store when none is
// configured: 600 seconds if a script is set, null (the server's 0)
// otherwise.
type scriptTimeoutDefault struct{}

func (scriptTimeoutDefault) Description(context.Context) string {
	return fmt.Sprintf("defaults to %d when a script is set, otherwise null", api.DefaultScriptTimeout)
}

func (m scriptTimeoutDefault) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (scriptTimeoutDefault) PlanModifyInt64(ctx context.Context, req planmodifier.Int64Request, resp *planmodifier.Int64Response) {
	if !req.ConfigValue.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var pre, post types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("pre_freeze_script"), &pre)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("post_thaw_script"), &post)...)
	switch {
	case isSet(pre) || isSet(post):
		resp.PlanValue = types.Int64Value(api.DefaultScriptTimeout)
	case pre.IsUnknown() || post.IsUnknown():
		resp.PlanValue = types.Int64Unknown()
	default:
		resp.PlanValue = types.Int64Null()
	}
}
