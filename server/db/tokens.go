package db

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Token is a stored API token: never the secret, only its hash.
type Token struct {
	ID        string
	Name      string
	Role      string
	Groups    []string
	CreatedAt time.Time
	ExpiresAt *time.Time
	RevokedAt *time.Time
	// LastUsedAt is when the token last authenticated a request, to within
	// the throttle of TouchToken; nil if it never has.
	LastUsedAt *time.Time
}

// Expired reports whether the token's expiry has passed at now.
func (t Token) Expired(now time.Time) bool { return t.ExpiresAt != nil && !t.ExpiresAt.After(now) }

// Live reports whether the token still authenticates at now.
func (t Token) Live(now time.Time) bool { return t.RevokedAt == nil && !t.Expired(now) }

const tokenColumns = "id::text, name, role, groups, created_at, expires_at, revoked_at, last_used_at"

func scanToken(row pgx.Row) (Token, error) {
	var t Token
	err := row.Scan(&t.ID, &t.Name, &t.Role, &t.Groups, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt, &t.LastUsedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNotFound
	}
	return t, err
}

// CreateToken stores a token by the hash of its secret.
func (d *DB) CreateToken(ctx context.Context, q Querier, name, role string, groups []string, expiresAt *time.Time, secretHash []byte) (Token, error) {
	if groups == nil {
		groups = []string{}
	}
	return scanToken(q.QueryRow(ctx, `INSERT INTO api_tokens (name, role, groups, expires_at, secret_hash)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+tokenColumns, name, role, groups, expiresAt, secretHash))
}

// TokenByHash finds the token with this hash, live or not: the caller
// checks Live, so a refusal can say whether the token expired or was
// revoked.
func (d *DB) TokenByHash(ctx context.Context, q Querier, secretHash []byte) (Token, error) {
	return scanToken(q.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE secret_hash = $1`, secretHash))
}

// TouchToken records that a token was used now, unless that was already
// recorded less than every ago: a busy client costs one write per interval,
// not one per request, and replicas racing on it write at most once.
func (d *DB) TouchToken(ctx context.Context, id string, every time.Duration) error {
	_, err := d.Pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = now()
		WHERE id = $1::uuid AND (last_used_at IS NULL OR last_used_at <= now() - make_interval(secs => $2))`, id, every.Seconds())
	return err
}

// CountLiveAdminTokens counts admin tokens that still work.
func (d *DB) CountLiveAdminTokens(ctx context.Context, q Querier) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM api_tokens
		WHERE role = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`).Scan(&n)
	return n, err
}

// ListTokens pages through tokens by creation order.
func (d *DB) ListTokens(ctx context.Context, afterID string, limit int) ([]Token, error) {
	rows, err := d.Pool.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens
		WHERE ($1 = '' OR id > $1::uuid) ORDER BY id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Token, error) { return scanToken(r) })
}

// RevokeToken marks a token revoked. Revoking twice is harmless.
func (d *DB) RevokeToken(ctx context.Context, id string) (Token, error) {
	t, err := scanToken(d.Pool.QueryRow(ctx, `UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
		WHERE id = $1::uuid RETURNING `+tokenColumns, id))
	if isInvalidText(err) {
		return t, ErrNotFound
	}
	return t, err
}

// Querier is satisfied by the pool and by a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}
