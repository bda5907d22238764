package db

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditEntry is one recorded API write: who made it, what it was, when,
// from where, and how it ended. It never holds a request body.
type AuditEntry struct {
	ID         int64
	At         time.Time
	TokenID    string // empty for a request without a known token
	TokenName  string
	Role       string
	Method     string
	Route      string // the route pattern, such as /v1/storages/{id}
	ObjectID   string
	RemoteAddr string
	Status     int
	RequestID  string
}

// AuditFilter narrows an audit listing; zero fields match everything.
type AuditFilter struct {
	TokenID, ObjectID, Method string
	Since, Until              *time.Time
}

// RecordAudit appends an entry to the audit log.
func (d *DB) RecordAudit(ctx context.Context, e AuditEntry) error {
	_, err := d.Pool.Exec(ctx, `INSERT INTO audit_log (token_id, token_name, role, method, route, object_id, remote_addr, status, request_id)
		VALUES (nullif($1, '')::uuid, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.TokenID, e.TokenName, e.Role, e.Method, e.Route, e.ObjectID, e.RemoteAddr, e.Status, e.RequestID)
	return err
}

// auditPruneBatch bounds the rows one statement of PruneAudit deletes, so
// pruning a long-neglected log never holds one long transaction.
const auditPruneBatch = 5000

// PruneAudit deletes the audit entries written before olderThan, oldest
// first in batches, and returns how many it deleted. Entries are appended
// in time order, so the oldest ids are the oldest entries.
func (d *DB) PruneAudit(ctx context.Context, olderThan time.Time) (int64, error) {
	var total int64
	for {
		tag, err := d.Pool.Exec(ctx, `DELETE FROM audit_log WHERE id IN (
			SELECT id FROM audit_log WHERE at < $1 ORDER BY id LIMIT $2)`, olderThan, auditPruneBatch)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < auditPruneBatch {
			return total, nil
		}
	}
}

// ListAudit pages through the audit log newest first; beforeID (0: none)
// is the id of the previous page's last entry.
func (d *DB) ListAudit(ctx context.Context, f AuditFilter, beforeID int64, limit int) ([]AuditEntry, error) {
	rows, err := d.Pool.Query(ctx, `SELECT id, at, coalesce(token_id::text, ''), token_name, role, method, route, object_id, remote_addr, status, request_id
		FROM audit_log
		WHERE ($1 = 0 OR id < $1)
		  AND ($2 = '' OR token_id = nullif($2, '')::uuid)
		  AND ($3 = '' OR object_id = $3)
		  AND ($4 = '' OR method = $4)
		  AND ($5::timestamptz IS NULL OR at >= $5)
		  AND ($6::timestamptz IS NULL OR at < $6)
		ORDER BY id DESC LIMIT $7`, beforeID, f.TokenID, f.ObjectID, f.Method, f.Since, f.Until, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.ID, &e.At, &e.TokenID, &e.TokenName, &e.Role, &e.Method, &e.Route, &e.ObjectID, &e.RemoteAddr, &e.Status, &e.RequestID)
		return e, err
	})
}
