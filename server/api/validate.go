package api

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // timezones must validate the same on hosts without zoneinfo
)

// Limits shared by the server's validation and the provider's plan-time
// validators, so both reject exactly the same values.
const (
	MaxNameLength        = 128
	MaxDescriptionLength = 1024
	MaxScriptLength      = 64 << 10
	MaxRetentionDays     = 36500
	MaxRetentionWeeks    = 5200
	MaxRetentionMonths   = 1200
	MaxRetentionYears    = 100
	MaxWindowHours       = 168
	MaxScriptTimeout     = 3600
	DefaultWarmDays      = 90
	DefaultScriptTimeout = 600
	DefaultS3Region      = "us-east-1"
)

// NamePattern is what an object name may look like.
var NamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// TimeOfDayPattern is HH:MM on a 24-hour clock.
var TimeOfDayPattern = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// Weekdays are the accepted day names, in ISO order.
var Weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// ColdStorageClasses are the S3 classes accepted for the cold tier.
var ColdStorageClasses = []string{"GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING"}

var bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func validateName(field, name string) *Error {
	switch {
	case name == "":
		return FieldError(field, "is required")
	case len(name) > MaxNameLength:
		return FieldError(field, "must be at most %d characters", MaxNameLength)
	case !NamePattern.MatchString(name):
		return FieldError(field, "must start with a letter or digit and contain only letters, digits, '.', '_' and '-'")
	}
	return nil
}

// Normalize fills defaults. It is applied before validation and storage so
// that what the server returns is what it will act on.
func (s *StorageSpec) Normalize() {
	if s.Kind == StorageS3 && s.Region == "" {
		s.Region = DefaultS3Region
	}
	s.Prefix = strings.Trim(s.Prefix, "/")
}

// Validate reports the first invalid field of a storage. A secret may be
// absent when keepSecret is true (an update that keeps the stored secret).
func (s *StorageSpec) Validate(keepSecret bool) *Error {
	if err := validateName("name", s.Name); err != nil {
		return err
	}
	s3Only := map[string]bool{"bucket": s.Bucket != "", "prefix": s.Prefix != "", "endpoint": s.Endpoint != "",
		"force_path_style": s.ForcePathStyle, "access_key_id": s.AccessKeyID != "", "secret_access_key": s.SecretAccessKey != "",
		"cold_storage_class": s.ColdStorageClass != ""}
	switch s.Kind {
	case StorageFilesystem:
		if s.Path == "" {
			return FieldError("path", "is required for a filesystem storage")
		}
		if !filepath.IsAbs(s.Path) {
			return FieldError("path", "must be an absolute path, got %q", s.Path)
		}
		if filepath.Clean(s.Path) != s.Path {
			return FieldError("path", "must be a clean path (no '..', '.', trailing or doubled slashes): use %q", filepath.Clean(s.Path))
		}
		for _, f := range []string{"bucket", "prefix", "endpoint", "force_path_style", "access_key_id", "secret_access_key", "cold_storage_class"} {
			if s3Only[f] {
				return FieldError(f, "applies only to storages of kind %q", StorageS3)
			}
		}
		if s.Region != "" {
			return FieldError("region", "applies only to storages of kind %q", StorageS3)
		}
	case StorageS3:
		if s.Path != "" {
			return FieldError("path", "applies only to storages of kind %q", StorageFilesystem)
		}
		if s.Bucket == "" {
			return FieldError("bucket", "is required for an s3 storage")
		}
		if !bucketPattern.MatchString(s.Bucket) || strings.Contains(s.Bucket, "..") {
			return FieldError("bucket", "%q is not a valid bucket name (3-63 lowercase letters, digits, '.' and '-')", s.Bucket)
		}
		if strings.Contains(s.Prefix, "//") || strings.Contains(s.Prefix, "..") {
			return FieldError("prefix", "must not contain '//' or '..'")
		}
		if s.Endpoint != "" {
			u, err := url.Parse(s.Endpoint)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return FieldError("endpoint", "must be an http or https URL, got %q", s.Endpoint)
			}
		}
		if s.SecretAccessKey != "" && s.AccessKeyID == "" {
			return FieldError("access_key_id", "is required when secret_access_key is set")
		}
		if s.AccessKeyID != "" && s.SecretAccessKey == "" && !keepSecret {
			return FieldError("secret_access_key", "is required when access_key_id is set (leave both empty for ambient credentials)")
		}
		if s.ColdStorageClass != "" && !slices.Contains(ColdStorageClasses, s.ColdStorageClass) {
			return FieldError("cold_storage_class", "must be one of %s, got %q", strings.Join(ColdStorageClasses, ", "), s.ColdStorageClass)
		}
	case "":
		return FieldError("kind", "is required: %q or %q", StorageFilesystem, StorageS3)
	default:
		return FieldError("kind", "must be %q or %q, got %q", StorageFilesystem, StorageS3, s.Kind)
	}
	return nil
}

// Normalize fills a policy's defaults and canonical spellings.
func (p *PolicySpec) Normalize() {
	lower := func(days []string) {
		for i, d := range days {
			days[i] = strings.ToLower(d)
		}
	}
	lower(p.Full.DaysOfWeek)
	if p.Incremental != nil {
		lower(p.Incremental.DaysOfWeek)
	}
	if p.Tiering.WarmDays == 0 {
		p.Tiering.WarmDays = DefaultWarmDays
	}
	if p.CBT == nil {
		t := true
		p.CBT = &t
	}
	if p.ScriptTimeoutSeconds == 0 && (p.PreFreezeScript != "" || p.PostThawScript != "") {
		p.ScriptTimeoutSeconds = DefaultScriptTimeout
	}
}

func validateDays(field string, days []string) *Error {
	seen := map[string]bool{}
	for i, d := range days {
		if !slices.Contains(Weekdays, d) {
			return FieldError(field+"["+strconv.Itoa(i)+"]", "must be one of %s, got %q", strings.Join(Weekdays, ", "), d)
		}
		if seen[d] {
			return FieldError(field+"["+strconv.Itoa(i)+"]", "%q is listed twice", d)
		}
		seen[d] = true
	}
	return nil
}

func validateAt(field, at string) *Error {
	if at == "" {
		return FieldError(field, "is required (HH:MM, 24-hour clock)")
	}
	if !TimeOfDayPattern.MatchString(at) {
		return FieldError(field, "must be HH:MM on a 24-hour clock, got %q", at)
	}
	return nil
}

func validateRange(field string, v, lo, hi int) *Error {
	if v < lo || v > hi {
		return FieldError(field, "must be between %d and %d, got %d", lo, hi, v)
	}
	return nil
}

// Validate reports the first invalid field of a policy. Call Normalize first.
func (p *PolicySpec) Validate() *Error {
	if err := validateName("name", p.Name); err != nil {
		return err
	}
	if len(p.Description) > MaxDescriptionLength {
		return FieldError("description", "must be at most %d characters", MaxDescriptionLength)
	}
	if p.Timezone == "" {
		return FieldError("timezone", "is required: an IANA name such as Europe/Paris or UTC")
	}
	if _, err := time.LoadLocation(p.Timezone); err != nil || p.Timezone == "Local" {
		return FieldError("timezone", "%q is not an IANA timezone name (such as Europe/Paris or UTC)", p.Timezone)
	}

	full := p.Full
	switch {
	case len(full.DaysOfWeek) > 0 && full.DayOfMonth != 0:
		return FieldError("full.day_of_month", "conflicts with full.days_of_week: give one or the other")
	case len(full.DaysOfWeek) == 0 && full.DayOfMonth == 0:
		return FieldError("full.days_of_week", "is required: give days_of_week or day_of_month")
	}
	if err := validateDays("full.days_of_week", full.DaysOfWeek); err != nil {
		return err
	}
	if full.DayOfMonth != 0 {
		if err := validateRange("full.day_of_month", full.DayOfMonth, 1, 31); err != nil {
			return err
		}
	}
	if err := validateAt("full.at", full.At); err != nil {
		return err
	}

	if inc := p.Incremental; inc != nil {
		if inc.EveryHours != 0 {
			if len(inc.DaysOfWeek) > 0 || inc.At != "" {
				return FieldError("incremental.every_hours", "conflicts with incremental.days_of_week and incremental.at: give one or the other")
			}
			if err := validateRange("incremental.every_hours", inc.EveryHours, 1, 24); err != nil {
				return err
			}
		} else {
			if len(inc.DaysOfWeek) == 0 {
				return FieldError("incremental.days_of_week", "is required: give days_of_week with at, or every_hours")
			}
			if err := validateDays("incremental.days_of_week", inc.DaysOfWeek); err != nil {
				return err
			}
			if err := validateAt("incremental.at", inc.At); err != nil {
				return err
			}
		}
	}

	if p.LogBackupIntervalMinutes != 0 {
		if err := validateRange("log_backup_interval_minutes", p.LogBackupIntervalMinutes, 5, 1440); err != nil {
			return err
		}
	}
	if err := validateRange("window_hours", p.WindowHours, 0, MaxWindowHours); err != nil {
		return err
	}
	if p.BandwidthMbps < 0 {
		return FieldError("bandwidth_mbps", "must not be negative (0 means unlimited), got %d", p.BandwidthMbps)
	}

	r := p.Retention
	for _, c := range []struct {
		field string
		v, hi int
	}{
		{"retention.daily_days", r.DailyDays, MaxRetentionDays},
		{"retention.weekly_weeks", r.WeeklyWeeks, MaxRetentionWeeks},
		{"retention.monthly_months", r.MonthlyMonths, MaxRetentionMonths},
		{"retention.yearly_years", r.YearlyYears, MaxRetentionYears},
		{"retention.log_days", r.LogDays, MaxRetentionDays},
	} {
		if err := validateRange(c.field, c.v, 0, c.hi); err != nil {
			return err
		}
	}
	if r.DailyDays+r.WeeklyWeeks+r.MonthlyMonths+r.YearlyYears == 0 {
		return FieldError("retention.daily_days", "at least one of daily_days, weekly_weeks, monthly_months or yearly_years must be positive, or every recovery point would expire at once")
	}
	if p.LogBackupIntervalMinutes != 0 && r.LogDays == 0 {
		return FieldError("retention.log_days", "must be positive when log_backup_interval_minutes is set")
	}

	if err := validateRange("tiering.warm_days", p.Tiering.WarmDays, 1, MaxRetentionDays); err != nil {
		return err
	}
	if c := p.Tiering.ColdAfterDays; c != nil {
		if *c < p.Tiering.WarmDays {
			return FieldError("tiering.cold_after_days", "must be at least tiering.warm_days (%d), got %d", p.Tiering.WarmDays, *c)
		}
		if err := validateRange("tiering.cold_after_days", *c, 1, MaxRetentionDays); err != nil {
			return err
		}
	}

	for field, script := range map[string]string{"pre_freeze_script": p.PreFreezeScript, "post_thaw_script": p.PostThawScript} {
		if len(script) > MaxScriptLength {
			return FieldError(field, "must be at most %d bytes", MaxScriptLength)
		}
	}
	if err := validateRange("script_timeout_seconds", p.ScriptTimeoutSeconds, 0, MaxScriptTimeout); err != nil {
		return err
	}
	return nil
}

// Validate reports the first invalid field of a token request.
func (t *TokenRequest) Validate() *Error {
	if err := validateName("name", t.Name); err != nil {
		return err
	}
	if !slices.Contains(Roles, t.Role) {
		return FieldError("role", "must be one of %s, got %q", strings.Join(Roles, ", "), t.Role)
	}
	if t.Role == RoleGroupAdmin && len(t.Groups) == 0 {
		return FieldError("groups", "is required for a group_admin token: name the administrative groups it manages")
	}
	if t.Role != RoleGroupAdmin && len(t.Groups) > 0 {
		return FieldError("groups", "applies only to group_admin tokens")
	}
	for i, g := range t.Groups {
		if err := validateName("groups["+strconv.Itoa(i)+"]", g); err != nil {
			return err
		}
	}
	if t.ExpiresAt != nil && !t.ExpiresAt.After(time.Now()) {
		return FieldError("expires_at", "must be in the future")
	}
	if t.TTL != "" {
		if t.ExpiresAt != nil {
			return FieldError("ttl", "cannot be given with expires_at: choose one")
		}
		if _, err := ParseTTL(t.TTL); err != nil {
			return FieldError("ttl", "%v", err)
		}
	}
	return nil
}

// ExpiresAtFrom is when the token expires if it is created at now: its
// expires_at, or now plus its TTL, or nil for a token that does not expire.
// The request must be valid.
func (t *TokenRequest) ExpiresAtFrom(now time.Time) *time.Time {
	if t.TTL == "" {
		return t.ExpiresAt
	}
	d, _ := ParseTTL(t.TTL)
	at := now.Add(d)
	return &at
}

// ParseTTL reads a token lifetime: a Go duration such as "12h" or "90m",
// or whole days such as "30d". It must be positive and at most ten years.
func ParseTTL(s string) (time.Duration, error) {
	const maxTTL = 10 * 365 * 24 * time.Hour
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("must be a duration such as 12h or 90m, or days such as 30d, got %q", s)
		}
		d = time.Duration(n) * 24 * time.Hour
		if n > int(maxTTL/(24*time.Hour)) {
			d = maxTTL + 1
		}
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("must be a duration such as 12h or 90m, or days such as 30d, got %q", s)
		}
	}
	if d <= 0 || d > maxTTL {
		return 0, fmt.Errorf("must be more than zero and at most 10 years (3650d), got %q", s)
	}
	return d, nil
}
