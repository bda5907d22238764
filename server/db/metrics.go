package db

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The queries below feed the server's metrics at scrape time. They read
// only the catalog, so every replica reports the same values.

// JobCount is how many jobs of a kind are in a state.
type JobCount struct {
	Kind, State string
	Count       int64
}

// JobCounts counts jobs by kind and state.
func (d *DB) JobCounts(ctx context.Context) ([]JobCount, error) {
	rows, err := d.Pool.Query(ctx, `SELECT kind, state, count(*) FROM jobs GROUP BY kind, state`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[JobCount])
}

// AssetHealth is a live protected asset, the policy it is under, and when
// its latest recovery point completed.
type AssetHealth struct {
	ID   string
	Name string
	// Kind is the asset's kind as recorded when retired (fileset,
	// protected_vm, ...): see AssetTable.
	Kind string
	// PolicySpec is the JSON spec of the asset's backup policy, nil if it
	// names none that exists.
	PolicyID   string
	PolicySpec []byte
	// LastSuccess is the completion of the asset's latest recovery point,
	// expired or not (its expiry does not undo the backup), nil if none.
	LastSuccess *time.Time
}

// AssetHealths lists every live asset of every registered kind.
func (d *DB) AssetHealths(ctx context.Context) ([]AssetHealth, error) {
	var union []string
	for _, t := range d.assetTableList() {
		union = append(union, fmt.Sprintf(`SELECT id, coalesce(spec->>'name', name) AS name, %s AS kind, spec->>'policy_id' AS policy_id FROM %s`,
			quoteLiteral(t.RetiredKind), t.Table))
	}
	rows, err := d.Pool.Query(ctx, `SELECT a.id::text, a.name, a.kind, coalesce(a.policy_id, ''), p.spec,
		(SELECT max(completed_at) FROM points WHERE points.asset_id = a.id)
		FROM (`+strings.Join(union, " UNION ALL ")+`) a
		LEFT JOIN backup_policies p ON p.id::text = a.policy_id
		ORDER BY a.id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[AssetHealth])
}

// StorageHealth is a storage's stored bytes and its latest maintenance.
type StorageHealth struct {
	ID, Name string
	// StoredBytes sums what the storage's live (unexpired) points stored.
	StoredBytes int64
	// LastVerify and LastGC are the latest verify and GC jobs of the
	// storage that succeeded or failed (canceled and skipped ones say
	// nothing about the data).
	LastVerify, LastGC MaintenanceRun
}

// MaintenanceRun is when a maintenance job finished and whether it
// succeeded; a zero At is none.
type MaintenanceRun struct {
	At        *time.Time
	Succeeded bool
}

// StorageHealths lists every storage.
func (d *DB) StorageHealths(ctx context.Context) ([]StorageHealth, error) {
	last := func(kind string) string {
		return `LEFT JOIN LATERAL (SELECT finished_at, state = 'succeeded' AS ok FROM jobs
			WHERE jobs.storage_id = s.id AND jobs.kind = '` + kind + `' AND jobs.state IN ('succeeded', 'failed')
			ORDER BY finished_at DESC NULLS LAST LIMIT 1) ` + kind + ` ON true`
	}
	rows, err := d.Pool.Query(ctx, `SELECT s.id::text, s.name,
		coalesce((SELECT sum(stored_bytes) FROM points WHERE points.storage_id = s.id AND points.deleted_at IS NULL), 0)::bigint,
		verify.finished_at, coalesce(verify.ok, false), gc.finished_at, coalesce(gc.ok, false)
		FROM storages s `+last("verify")+` `+last("gc")+` ORDER BY s.id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (StorageHealth, error) {
		var h StorageHealth
		err := row.Scan(&h.ID, &h.Name, &h.StoredBytes, &h.LastVerify.At, &h.LastVerify.Succeeded, &h.LastGC.At, &h.LastGC.Succeeded)
		return h, err
	})
}

// AgentSeen is a file server whose agent has activated, and when it last
// called in (nil: never since activating).
type AgentSeen struct {
	FileServerID, Name string
	LastSeen           *time.Time
}

// AgentsSeen lists the file servers with an activated agent.
func (d *DB) AgentsSeen(ctx context.Context) ([]AgentSeen, error) {
	rows, err := d.Pool.Query(ctx, `SELECT id::text, name, agent_last_seen FROM file_servers
		WHERE agent_token_id IS NOT NULL ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[AgentSeen])
}
