package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Table names an object collection. Only the constants below exist, which
// is what makes formatting them into SQL safe.
type Table string

const (
	Storages       Table = "storages"
	BackupPolicies Table = "backup_policies"
	FileServers    Table = "file_servers"
	Filesets       Table = "filesets"
	VCenters       Table = "vcenters"
	// ProtectedVMs and VMProtectionRules keep the whole api.ProtectedVM
	// (api.VMProtectionRule) as spec, without Meta and secrets, because the
	// server maintains part of it (inventory name, status, rule).
	ProtectedVMs      Table = "protected_vms"
	VMProtectionRules Table = "vm_protection_rules"
	// DatabaseServers keep what their agent detected in their spec too
	// (SetDatabaseDetected); DatabaseSets are the database driver's
	// assets.
	DatabaseServers Table = "database_servers"
	DatabaseSets    Table = "database_sets"
	// AWSTargets keep the last check's outcome (account, status) in
	// their spec, as VCenters do.
	AWSTargets Table = "aws_targets"
	// DRPlans keep their spec with references resolved to ids; their
	// copies are in dr_copies (drcopies.go).
	DRPlans Table = "dr_plans"
	// NASDevices keep their spec without secrets (the SMB password or
	// keytab is the sealed secret); NASShares are the NAS driver's assets,
	// and keep their device's group in their spec (SetNASShareGroup).
	NASDevices Table = "nas_devices"
	NASShares  Table = "nas_shares"
)

// Object is one stored row of an object collection. Spec is the API spec as
// JSON; SealedSecret is the master-key-sealed secret, if any.
type Object struct {
	ID           string
	Name         string
	Spec         []byte
	SealedSecret []byte
	Version      int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

const objectColumns = "id::text, name, spec, sealed_secret, version, created_at, updated_at"

func scanObject(row pgx.Row) (Object, error) {
	var o Object
	err := row.Scan(&o.ID, &o.Name, &o.Spec, &o.SealedSecret, &o.Version, &o.CreatedAt, &o.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, ErrNotFound
	}
	return o, err
}

// Create inserts an object. When idempotencyKey repeats an earlier create,
// that object is returned with created=false instead of a name conflict, so
// a client retrying a create whose answer it lost gets the same object.
func (d *DB) Create(ctx context.Context, t Table, name string, spec, sealedSecret []byte, idempotencyKey string) (o Object, created bool, err error) {
	var key *string
	if idempotencyKey != "" {
		key = &idempotencyKey
	}
	o, err = scanObject(d.Pool.QueryRow(ctx, fmt.Sprintf(
		`INSERT INTO %s (name, spec, sealed_secret, idempotency_key) VALUES ($1, $2, $3, $4) RETURNING %s`, t, objectColumns),
		name, spec, sealedSecret, key))
	if err == nil {
		return o, true, nil
	}
	if !isUniqueViolation(err, "") {
		return o, false, err
	}
	// The repeated create collides on the name as well as on the key, and
	// which constraint PostgreSQL reports first is not defined: look the key up.
	if key != nil {
		prev, kerr := scanObject(d.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE idempotency_key = $1`, objectColumns, t), key))
		if kerr == nil {
			return prev, false, nil
		}
	}
	if isUniqueViolation(err, string(t)+"_name_key") {
		return o, false, ErrNameTaken
	}
	return o, false, err
}

// CreateWithID inserts an object under a given id (a storage imported
// under the id its repository was created with), through q (a
// transaction, so that it commits with what it is done for). An object of
// that id is returned as it is, with created=false; a name another object
// has is ErrNameTaken.
func (d *DB) CreateWithID(ctx context.Context, q Querier, t Table, id, name string, spec, sealedSecret []byte) (o Object, created bool, err error) {
	o, err = scanObject(q.QueryRow(ctx, fmt.Sprintf(
		`INSERT INTO %s (id, name, spec, sealed_secret) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING %s`, t, objectColumns),
		id, name, spec, sealedSecret))
	switch {
	case err == nil:
		return o, true, nil
	case errors.Is(err, ErrNotFound):
		o, err = scanObject(q.QueryRow(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE id = $1`, objectColumns, t), id))
		return o, false, err
	case isUniqueViolation(err, string(t)+"_name_key"):
		return o, false, ErrNameTaken
	}
	return o, false, err
}

// Get finds an object by id, or by name when idOrName is not a UUID.
func (d *DB) Get(ctx context.Context, t Table, idOrName string) (Object, error) {
	return scanObject(d.Pool.QueryRow(ctx, fmt.Sprintf(
		`SELECT %s FROM %s WHERE CASE WHEN $1 ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' THEN id = $1::uuid ELSE name = $1 END`,
		objectColumns, t), idOrName))
}

// Update replaces an object's name, spec and secret. With expect set, the
// write happens only if the stored version equals it; otherwise the answer
// is a *StaleError carrying the current version.
func (d *DB) Update(ctx context.Context, t Table, id string, expect *int64, name string, spec, sealedSecret []byte) (Object, error) {
	o, err := scanObject(d.Pool.QueryRow(ctx, fmt.Sprintf(
		`UPDATE %s SET name = $2, spec = $3, sealed_secret = $4, version = version + 1, updated_at = now()
		 WHERE id = $1::uuid AND ($5::bigint IS NULL OR version = $5) RETURNING %s`, t, objectColumns),
		id, name, spec, sealedSecret, expect))
	if isUniqueViolation(err, string(t)+"_name_key") {
		return o, ErrNameTaken
	}
	if errors.Is(err, ErrNotFound) && expect != nil {
		return o, d.staleOrMissing(ctx, t, id)
	}
	return o, err
}

// Delete removes an object, with the same version check as Update. A
// deleted asset is retired in the same transaction (see retire), so its
// recovery points keep what they need.
func (d *DB) Delete(ctx context.Context, t Table, id string, expect *int64) error {
	var deleted int64
	err := d.InTx(ctx, func(tx pgx.Tx) error {
		if err := d.retire(ctx, tx, t, id, expect); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE id = $1::uuid AND ($2::bigint IS NULL OR version = $2)`, t), id, expect)
		deleted = tag.RowsAffected()
		return err
	})
	if err != nil {
		return err
	}
	if deleted == 0 {
		if expect == nil {
			return ErrNotFound
		}
		return d.staleOrMissing(ctx, t, id)
	}
	return nil
}

func (d *DB) staleOrMissing(ctx context.Context, t Table, id string) error {
	var current int64
	err := d.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT version FROM %s WHERE id = $1::uuid`, t), id).Scan(&current)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return &StaleError{Current: current}
}

// List returns up to limit objects ordered by name, starting after the name
// afterName (keyset pagination: stable under concurrent inserts).
func (d *DB) List(ctx context.Context, t Table, afterName string, limit int) ([]Object, error) {
	rows, err := d.Pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE name > $1 ORDER BY name LIMIT $2`, objectColumns, t), afterName, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Object, error) { return scanObject(r) })
}

// Referencing names an object (a fileset, protected VM or VM protection
// rule) whose spec field refers to id, with what kind it is; "" when none.
// Only user-declared objects count: a protection a rule made is held by
// its rule, and is retired with what it refers to (RuleMadeUsing). A NAS
// device refers to file servers by its list proxy_file_server_ids, which
// counts as file_server_id.
func (d *DB) Referencing(ctx context.Context, field, id string) (kind, name string, err error) {
	// The built-in assets have their own rules; any other workload's
	// assets refer to what they name in their spec. NAS shares are named
	// below whether or not their driver is registered.
	var others strings.Builder
	for _, t := range d.assetTableList() {
		if t.Table != Filesets && t.Table != ProtectedVMs && t.Table != NASShares {
			fmt.Fprintf(&others, "\n\t\tUNION ALL SELECT %s, name FROM %s WHERE spec->>$1 = $2",
				quoteLiteral(strings.ReplaceAll(t.RetiredKind, "_", " ")), t.Table)
		}
	}
	err = d.Pool.QueryRow(ctx, `SELECT kind, label FROM (
		SELECT 'fileset' AS kind, name AS label FROM filesets WHERE spec->>$1 = $2
		UNION ALL SELECT 'protected VM', spec->>'name' FROM protected_vms WHERE spec->>$1 = $2 AND coalesce(spec->>'rule_id', '') = ''
		UNION ALL SELECT 'VM protection rule', name FROM vm_protection_rules WHERE spec->>$1 = $2
		UNION ALL SELECT 'database server', name FROM database_servers WHERE spec->>$1 = $2
		UNION ALL SELECT 'NAS share', name FROM nas_shares WHERE spec->>$1 = $2
		UNION ALL SELECT 'NAS device', name FROM nas_devices WHERE $1 = 'file_server_id' AND spec->'proxy_file_server_ids' ? $2`+others.String()+`
	) refs ORDER BY kind, label LIMIT 1`, field, id).Scan(&kind, &name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil
	}
	return kind, name, err
}

// AgentStatus tells whether a file server's agent has registered and when
// it last called in; an agent silent for longer than offlineAfter (zero:
// AgentOfflineAfter) is offline.
func (d *DB) AgentStatus(ctx context.Context, fileServerID string, offlineAfter time.Duration) (string, *time.Time) {
	if offlineAfter <= 0 {
		offlineAfter = AgentOfflineAfter
	}
	var token *string
	var seen *time.Time
	if err := d.Pool.QueryRow(ctx, `SELECT agent_token_id::text, agent_last_seen FROM file_servers WHERE id = $1`, fileServerID).Scan(&token, &seen); err != nil {
		return "", nil
	}
	switch {
	case token == nil:
		return "pending", seen
	case seen != nil && time.Since(*seen) < offlineAfter:
		return "online", seen
	}
	return "offline", seen
}

// AgentOfflineAfter is how long an agent may stay silent and still count
// as online, unless the server is configured otherwise.
const AgentOfflineAfter = 90 * time.Second

// AssetTable is a collection whose objects are protected assets, and the
// kind its deleted assets are recorded under in retired_assets.
type AssetTable struct {
	Table       Table
	RetiredKind string
}

// defaultAssetTables are the collections of the built-in workloads'
// assets, until the driver registry names them (SetAssetTables).
var defaultAssetTables = []AssetTable{{Filesets, "fileset"}, {ProtectedVMs, "protected_vm"}}

// SetAssetTables names the collections whose objects are protected assets
// (what backups, points and retention are about): the driver registry's
// tables. Call it before the DB is used.
func (d *DB) SetAssetTables(ts []AssetTable) { d.assetTables = ts }

// AssetTables are the collections whose objects are protected assets.
func (d *DB) AssetTables() []Table {
	out := make([]Table, len(d.assetTableList()))
	for i, t := range d.assetTableList() {
		out[i] = t.Table
	}
	return out
}

func (d *DB) assetTableList() []AssetTable {
	if d.assetTables == nil {
		return defaultAssetTables
	}
	return d.assetTables
}

// assetTable is t's entry among the asset tables.
func (d *DB) assetTable(t Table) (AssetTable, bool) {
	for _, a := range d.assetTableList() {
		if a.Table == t {
			return a, true
		}
	}
	return AssetTable{}, false
}

// AssetObject finds a protected asset of any kind by id, and says which
// collection holds it.
func (d *DB) AssetObject(ctx context.Context, id string) (Table, Object, error) {
	for _, t := range d.AssetTables() {
		o, err := d.Get(ctx, t, id)
		if err == nil {
			return t, o, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return "", Object{}, err
		}
	}
	return "", Object{}, ErrNotFound
}

// AssetsUsing lists the ids of assets of every kind whose spec field
// refers to id, by name.
func (d *DB) AssetsUsing(ctx context.Context, field, id string) ([]string, error) {
	var union []string
	for _, t := range d.AssetTables() {
		union = append(union, fmt.Sprintf("SELECT id, name, spec FROM %s", t))
	}
	rows, err := d.Pool.Query(ctx, `SELECT id::text FROM (`+strings.Join(union, " UNION ALL ")+`) a
		WHERE spec->>$1 = $2 ORDER BY name`, field, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// IncludePathsOn lists the include paths of every fileset on a file server.
func (d *DB) IncludePathsOn(ctx context.Context, fileServerID string) ([]string, error) {
	rows, err := d.Pool.Query(ctx, `SELECT DISTINCT jsonb_array_elements_text(spec->'include_paths') FROM filesets
		WHERE spec->>'file_server_id' = $1 ORDER BY 1`, fileServerID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// SetDatabaseDetected records what an agent found on a database server,
// without changing the server's version: it is not the user's to manage.
func (d *DB) SetDatabaseDetected(ctx context.Context, id string, detected any) error {
	_, err := d.Pool.Exec(ctx, `UPDATE database_servers SET spec = jsonb_set(spec, '{detected}', $2::jsonb) WHERE id = $1`, id, detected)
	return err
}

// SetNASShareGroup gives the NAS shares of a device the device's group,
// which their group checks read from their spec, without changing their
// versions: the group follows the device and is not the user's to set.
func (d *DB) SetNASShareGroup(ctx context.Context, deviceID, group string) error {
	_, err := d.Pool.Exec(ctx, `UPDATE nas_shares SET spec = CASE WHEN $2 = '' THEN spec - 'group'
		ELSE jsonb_set(spec, '{group}', to_jsonb($2::text)) END
		WHERE spec->>'nas_device_id' = $1 AND coalesce(spec->>'group', '') <> $2`, deviceID, group)
	return err
}
