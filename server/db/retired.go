package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Recovery points outlive the assets that made them. When an asset
// (fileset or protected VM) is deleted, Delete writes a retired_assets row
// in the same transaction: the asset's stored spec, its display name, the
// backup policy it was under and, for a fileset, its file server. The
// asset's points are then listed under its name, restored to any
// compatible target, and retained under that policy until the last one
// expires, whatever happens to the policy, file server or vCenter after.

// RetiredAsset is a deleted asset as its points remember it.
type RetiredAsset struct {
	ID string
	// Kind is the asset table's retired kind ("fileset", "protected_vm",
	// or another workload's: see AssetTable).
	Kind string
	Name string
	// Spec is the asset's stored spec column as it was.
	Spec []byte
	// Policy is the backup policy's spec at retirement; nil if it was gone.
	Policy []byte
	// FileServer is a fileset's file server spec with its "id"; nil for
	// other kinds.
	FileServer []byte
	CreatedAt  time.Time
	RetiredAt  time.Time
}

// assetSnapshotSQL reads an asset row, with what it refers to, as a
// retired_assets row would hold it: id, kind, name, spec, policy,
// file_server, created_at. $1 is the id, $2 the expected version (or NULL).
var assetSnapshotSQL = map[Table]string{
	Filesets: `SELECT a.id, 'fileset', a.name, a.spec, p.spec, jsonb_build_object('id', f.id::text) || f.spec, a.created_at
		FROM filesets a
		LEFT JOIN backup_policies p ON p.id::text = a.spec->>'policy_id'
		LEFT JOIN file_servers f ON f.id::text = a.spec->>'file_server_id'
		WHERE a.id = $1::uuid AND ($2::bigint IS NULL OR a.version = $2)`,
	ProtectedVMs: `SELECT a.id, 'protected_vm', coalesce(a.spec->>'name', a.name), a.spec, p.spec, NULL::jsonb, a.created_at
		FROM protected_vms a
		LEFT JOIN backup_policies p ON p.id::text = a.spec->>'policy_id'
		WHERE a.id = $1::uuid AND ($2::bigint IS NULL OR a.version = $2)`,
}

// otherSnapshotSQL is assetSnapshotSQL for any other workload's table: its
// spec, its name (the spec's, else the row's) and its policy; $3 is its
// retired kind.
const otherSnapshotSQL = `SELECT a.id, $3::text, coalesce(a.spec->>'name', a.name), a.spec, p.spec, NULL::jsonb, a.created_at
		FROM %s a
		LEFT JOIN backup_policies p ON p.id::text = a.spec->>'policy_id'
		WHERE a.id = $1::uuid AND ($2::bigint IS NULL OR a.version = $2)`

// snapshotQuery is the query reading an asset of table t as it would be
// retired, with its arguments past the id and expected version; ok is
// false for a table that holds no assets.
func (d *DB) snapshotQuery(t Table) (q string, args []any, ok bool) {
	if q, ok := assetSnapshotSQL[t]; ok {
		return q, nil, true
	}
	at, ok := d.assetTable(t)
	if !ok {
		return "", nil, false
	}
	return fmt.Sprintf(otherSnapshotSQL, t), []any{at.RetiredKind}, true
}

// retire records an asset as retired inside the transaction that deletes
// it. Tables that hold no assets need nothing.
func (d *DB) retire(ctx context.Context, tx pgx.Tx, t Table, id string, expect *int64) error {
	q, args, ok := d.snapshotQuery(t)
	if !ok {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO retired_assets (id, kind, name, spec, policy, file_server, created_at) `+q+`
		ON CONFLICT (id) DO NOTHING`, append([]any{id, expect}, args...)...)
	return err
}

// assetSnapshot is a live asset as it would be recorded if it were
// deleted now (see retire); ErrNotFound if no asset table has it.
func (d *DB) assetSnapshot(ctx context.Context, q Querier, id string) (RetiredAsset, error) {
	var r RetiredAsset
	if !looksLikeUUID(id) {
		return r, ErrNotFound
	}
	for _, t := range d.AssetTables() {
		sql, args, _ := d.snapshotQuery(t)
		err := q.QueryRow(ctx, sql, append([]any{id, nil}, args...)...).Scan(&r.ID, &r.Kind, &r.Name, &r.Spec, &r.Policy, &r.FileServer, &r.CreatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		return r, err
	}
	return r, ErrNotFound
}

// GetRetiredAsset reads a retired asset.
func (d *DB) GetRetiredAsset(ctx context.Context, id string) (RetiredAsset, error) {
	var r RetiredAsset
	if !looksLikeUUID(id) {
		return r, ErrNotFound
	}
	err := d.Pool.QueryRow(ctx, `SELECT id::text, kind, name, spec, policy, file_server, created_at, retired_at
		FROM retired_assets WHERE id = $1`, id).Scan(&r.ID, &r.Kind, &r.Name, &r.Spec, &r.Policy, &r.FileServer, &r.CreatedAt, &r.RetiredAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// AssetSpec is the stored spec of an asset, live or retired: what group
// and storage checks on its points read.
func (d *DB) AssetSpec(ctx context.Context, id string) ([]byte, error) {
	_, o, err := d.AssetObject(ctx, id)
	if err == nil {
		return o.Spec, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	r, err := d.GetRetiredAsset(ctx, id)
	return r.Spec, err
}

// RuleMadeUsing lists the protected VMs that a selection rule made and
// whose spec field refers to id, with their versions. They are not
// user-declared, so they never hold what they refer to: deleting that
// retires them.
func (d *DB) RuleMadeUsing(ctx context.Context, field, id string) ([]Object, error) {
	rows, err := d.Pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM protected_vms
		WHERE spec->>$1 = $2 AND coalesce(spec->>'rule_id', '') <> '' ORDER BY name`, objectColumns), field, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Object, error) { return scanObject(r) })
}

// StoragePoints counts a storage's live points, the assets they belong
// to, and how many of them are on legal hold.
func (d *DB) StoragePoints(ctx context.Context, storageID string) (points, assets, held int, err error) {
	err = d.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT asset_id), count(*) FILTER (WHERE legal_hold)
		FROM points WHERE storage_id = $1 AND deleted_at IS NULL`, storageID).Scan(&points, &assets, &held)
	return points, assets, held, err
}

// StorageJobsActive lists a storage's queued and running jobs of the kinds
// given, or of every other kind with except set.
func (d *DB) StorageJobsActive(ctx context.Context, storageID string, kinds []string, except bool) ([]string, error) {
	rows, err := d.Pool.Query(ctx, `SELECT id::text FROM jobs WHERE storage_id = $1 AND state IN ('queued', 'running')
		AND (kind = ANY($2)) <> $3 ORDER BY created_at`, storageID, kinds, except)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ExpireStoragePoints expires every live point of a storage that is not on
// legal hold, for its forced destroy, and says how many.
func (d *DB) ExpireStoragePoints(ctx context.Context, storageID string) (int64, error) {
	tag, err := d.Pool.Exec(ctx, `UPDATE points SET deleted_at = now(), reasons = '{}'
		WHERE storage_id = $1 AND deleted_at IS NULL AND NOT legal_hold`, storageID)
	return tag.RowsAffected(), err
}
