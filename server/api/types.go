// Package api is the contract between the Haven server and its clients: the
// request and response types, their validation, the OpenAPI document that is
// the source of truth for all of them, and a typed client.
//
// The provider and the CLI import only this package, never server internals.
package api

import "time"

// Meta is carried by every stored object. Version increases by one on every
// successful write; sending a stale version (in the body or If-Match) gets 409.
type Meta struct {
	ID        string    `json:"id"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Storage kinds.
const (
	StorageFilesystem = "filesystem"
	StorageS3         = "s3"
)

// StorageSpec is the writable part of a storage: where recovery-point data lives.
type StorageSpec struct {
	Name string `json:"name"`
	Kind string `json:"kind"`

	// Path is the absolute directory of a filesystem storage.
	Path string `json:"path,omitempty"`

	Bucket         string `json:"bucket,omitempty"`
	Prefix         string `json:"prefix,omitempty"`
	Region         string `json:"region,omitempty"`
	Endpoint       string `json:"endpoint,omitempty"`
	ForcePathStyle bool   `json:"force_path_style,omitempty"`
	// AccessKeyID and SecretAccessKey are both empty for ambient credentials.
	AccessKeyID string `json:"access_key_id,omitempty"`
	// SecretAccessKey is write-only: the server stores it sealed with its
	// master key and never returns it.
	SecretAccessKey string `json:"secret_access_key,omitempty" api:"writeonly"`

	// ColdStorageClass is the S3 storage class of the cold tier, e.g. GLACIER.
	ColdStorageClass string `json:"cold_storage_class,omitempty"`

	// ForceDestroy lets deleting the storage expire the recovery points it
	// still holds and delete their data. Without it, deleting a storage
	// that holds points is refused (409) with their count, as
	// aws_backup_vault's force_destroy does.
	ForceDestroy bool `json:"force_destroy,omitempty"`
}

// StorageDestroyed answers the delete of a storage with ForceDestroy that
// held recovery points: what the destroy expired and removed.
type StorageDestroyed struct {
	ExpiredPoints  int64  `json:"expired_points"`
	DeletedObjects int64  `json:"deleted_objects"`
	DeletedBytes   int64  `json:"deleted_bytes"`
	Message        string `json:"message"`
}

// StorageRequest is the body of create and update calls. Version is optional
// on update; when given (here or as If-Match) it must match the current one.
type StorageRequest struct {
	StorageSpec
	Version *int64 `json:"version,omitempty"`
}

// StorageImportRequest is the body of POST /v1/storages/import: the spec
// of a storage (as for a create, credentials included) whose location
// already holds a Haven repository that this server's catalog lost. The
// answer is the import job (kind JobImport) on the storage, whose id is
// the repository's.
type StorageImportRequest struct {
	StorageSpec
}

// Keys of a storage import job's Result: what the import added, in
// decimal. Counts are of what the attempt that finished added: an attempt
// cut short leaves its work counted as known by the next.
const (
	// ImportResultPacks and ImportResultChunks were indexed from the packs' trailers;
	// ImportResultKnownPacks were in the index already.
	ImportResultPacks      = "packs"
	ImportResultChunks     = "chunks"
	ImportResultKnownPacks = "known_packs"
	// ImportResultPoints were added to the catalog, ImportResultKnownPoints were in
	// it; ImportResultAssets are the deleted assets recorded so that their
	// points list, restore and are retained.
	ImportResultPoints      = "points"
	ImportResultKnownPoints = "known_points"
	ImportResultAssets      = "assets"
	// ImportResultSkipped counts the objects of the store the import could not
	// use; the job's warnings name each, with why.
	ImportResultSkipped = "skipped"
)

// Storage is a stored storage as the server returns it.
type Storage struct {
	Meta
	StorageSpec
	// HasSecret tells whether a secret access key is stored.
	HasSecret bool `json:"has_secret"`
}

// Schedule of full backups: either days of the week or a day of the month,
// plus a start time in the policy's timezone.
type FullSchedule struct {
	DaysOfWeek []string `json:"days_of_week,omitempty"`
	DayOfMonth int      `json:"day_of_month,omitempty"`
	At         string   `json:"at"`
}

// IncrementalSchedule: days of the week plus a time, or every N hours.
// Databases use it as their differential schedule.
type IncrementalSchedule struct {
	DaysOfWeek []string `json:"days_of_week,omitempty"`
	At         string   `json:"at,omitempty"`
	EveryHours int      `json:"every_hours,omitempty"`
}

// Retention is the grandfather-father-son rule set. Zero disables a rule.
type Retention struct {
	DailyDays     int `json:"daily_days"`
	WeeklyWeeks   int `json:"weekly_weeks"`
	MonthlyMonths int `json:"monthly_months"`
	YearlyYears   int `json:"yearly_years"`
	LogDays       int `json:"log_days"`
}

// Tiering moves kept recovery points between storage tiers. A point is warm
// from creation; if ColdAfterDays is set, a kept point moves to the cold
// storage class that many days after creation (never before WarmDays).
type Tiering struct {
	WarmDays      int  `json:"warm_days"`
	ColdAfterDays *int `json:"cold_after_days,omitempty"`
}

// PolicySpec is the writable part of a backup policy.
type PolicySpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Timezone    string `json:"timezone"`

	Full        FullSchedule         `json:"full"`
	Incremental *IncrementalSchedule `json:"incremental,omitempty"`

	LogBackupIntervalMinutes int `json:"log_backup_interval_minutes,omitempty"`
	WindowHours              int `json:"window_hours,omitempty"`
	// BandwidthMbps caps the scheduled uploads of the policy's assets
	// together (per replica); 0 is unlimited. On-demand runs ignore it.
	BandwidthMbps int `json:"bandwidth_mbps,omitempty"`

	Retention Retention `json:"retention"`
	Tiering   Tiering   `json:"tiering"`

	AppConsistent        bool   `json:"app_consistent,omitempty"`
	PreFreezeScript      string `json:"pre_freeze_script,omitempty"`
	PostThawScript       string `json:"post_thaw_script,omitempty"`
	ScriptTimeoutSeconds int    `json:"script_timeout_seconds,omitempty"`
	// CBT defaults to true when absent.
	CBT *bool `json:"cbt,omitempty"`
}

// PolicyRequest is the body of create and update calls.
type PolicyRequest struct {
	PolicySpec
	Version *int64 `json:"version,omitempty"`
}

// Policy is a stored backup policy as the server returns it.
type Policy struct {
	Meta
	PolicySpec
}

// Roles a token can carry.
const (
	RoleAdmin      = "admin"
	RoleOperator   = "operator"
	RoleGroupAdmin = "group_admin"
	RoleReadOnly   = "read_only"
)

// Roles lists every role, most powerful first.
var Roles = []string{RoleAdmin, RoleOperator, RoleGroupAdmin, RoleReadOnly}

// TokenRequest creates an API token.
type TokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Groups scopes a group_admin token to administrative groups.
	Groups []string `json:"groups,omitempty"`
	// ExpiresAt or TTL (not both) make the token stop working at a time;
	// without either it works until revoked.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// TTL is a lifetime from creation: a Go duration ("12h", "90m") or a
	// number of days ("30d").
	TTL string `json:"ttl,omitempty"`
}

// Token describes an API token. The secret itself is only ever shown once,
// in CreatedToken.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Groups    []string   `json:"groups,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// LastUsedAt is when the token last authenticated a request, recorded
	// at most once a minute.
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// AuditEntry is one API write in the audit log: who (the token), what (the
// method, route pattern and object), when, from where, and the status it
// got. Refused writes are recorded too. Request bodies never are.
type AuditEntry struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	TokenID    string    `json:"token_id,omitempty"`
	TokenName  string    `json:"token_name,omitempty"`
	Role       string    `json:"role,omitempty"`
	Method     string    `json:"method"`
	Route      string    `json:"route"`
	ObjectID   string    `json:"object_id,omitempty"`
	RemoteAddr string    `json:"remote_addr"`
	Status     int       `json:"status"`
	RequestID  string    `json:"request_id"`
}

// AuditFilter narrows GET /v1/audit; zero fields match everything.
type AuditFilter struct {
	TokenID  string
	ObjectID string
	Method   string
	Since    *time.Time // entries at or after
	Until    *time.Time // entries before
}

// CreatedToken is the answer to a token creation: the only time the bearer
// secret is returned. Only its hash is stored.
type CreatedToken struct {
	Token
	Secret string `json:"token"`
}

// List is one page of a collection. NextPageToken is empty on the last page.
type List[T any] struct {
	Items         []T    `json:"items"`
	NextPageToken string `json:"next_page_token,omitempty"`
}

// Health is the answer of /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// VersionInfo is the answer of /v1/version.
type VersionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
}
