package db

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrBadActivation means an activation token is unknown, expired or
// already used.
var ErrBadActivation = errors.New("activation token unknown, expired or already used")

// ActivationLifetime is how long an activation token stays valid unused.
const ActivationLifetime = 24 * time.Hour

// activationRetryWindow is how long after an activation the same token
// still gets a credential, for an agent whose first answer was lost (see
// ActivateAgent).
const activationRetryWindow = 15 * time.Minute

// PendingActivation is a file server's activation token not yet used:
// sealed with the master key, and when it stops working.
type PendingActivation struct {
	Sealed    []byte
	ExpiresAt time.Time
}

// IssueActivation answers with a file server's pending activation token
// while it is unused and unexpired, so that every caller until then (each
// Terraform plan and apply, a retried request) gets the same token.
// Otherwise, or when replace is set, it stores the token fresh makes
// (hash and sealed value), which replaces any earlier one: at most one
// activation token of a file server is valid.
func (d *DB) IssueActivation(ctx context.Context, fileServerID string, replace bool, fresh func() (hash, sealed []byte)) (PendingActivation, error) {
	var out PendingActivation
	err := pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		var sealed []byte
		var expires *time.Time
		err := tx.QueryRow(ctx, `SELECT activation_sealed, activation_expires_at FROM file_servers
			WHERE id = $1 AND activation_hash IS NOT NULL AND activation_expires_at > now() FOR UPDATE`, fileServerID).Scan(&sealed, &expires)
		if err == nil && !replace && sealed != nil {
			out = PendingActivation{Sealed: sealed, ExpiresAt: *expires}
			return nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		hash, sealed := fresh()
		err = tx.QueryRow(ctx, `UPDATE file_servers SET activation_hash = $2, activation_sealed = $3,
			activation_expires_at = now() + make_interval(secs => $4) WHERE id = $1 RETURNING activation_expires_at`,
			fileServerID, hash, sealed, ActivationLifetime.Seconds()).Scan(&expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		out = PendingActivation{Sealed: sealed}
		if expires != nil {
			out.ExpiresAt = *expires
		}
		return err
	})
	return out, err
}

// ActivateAgent trades a file server's one-time activation token (by hash)
// for an agent credential (a token of role agent), in one transaction: the
// activation token stops working as the credential starts, and so does the
// credential of an agent activated before.
//
// An agent whose answer was lost (the connection dropped, or the agent was
// killed before it stored the credential) asks again with the same token.
// Within activationRetryWindow, and as long as the credential the first
// try made has never been used, it gets a new secret for that credential
// instead of a refusal, and the secret it never received stops working.
func (d *DB) ActivateAgent(ctx context.Context, activationHash, credentialHash []byte, hostname string) (fileServerID string, err error) {
	err = pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		var name string
		var previous *string
		err := tx.QueryRow(ctx, `SELECT id::text, name, agent_token_id::text FROM file_servers
			WHERE activation_hash = $1 AND (activation_expires_at IS NULL OR activation_expires_at > now()) FOR UPDATE`,
			activationHash).Scan(&fileServerID, &name, &previous)
		if errors.Is(err, pgx.ErrNoRows) {
			fileServerID, err = activateAgain(ctx, tx, activationHash, credentialHash)
			return err
		}
		if err != nil {
			return err
		}
		tok, err := d.CreateToken(ctx, tx, "agent-"+name, "agent", nil, nil, credentialHash)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE file_servers SET activation_hash = NULL, activation_sealed = NULL, activation_expires_at = NULL,
			activated_hash = $3, activated_at = now(), agent_token_id = $2, agent_last_seen = now() WHERE id = $1`,
			fileServerID, tok.ID, activationHash)
		if err != nil || previous == nil {
			return err
		}
		// A host enrolled again (rebuilt, or its state dir lost): the
		// credential of the agent it replaces stops working.
		_, err = tx.Exec(ctx, `UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1::uuid`, *previous)
		return err
	})
	return fileServerID, err
}

// activateAgain serves a retried activation (see ActivateAgent): the
// token's credential, if it was made moments ago and never used, gets
// credentialHash as its secret.
func activateAgain(ctx context.Context, tx pgx.Tx, activationHash, credentialHash []byte) (string, error) {
	var fileServerID string
	err := tx.QueryRow(ctx, `UPDATE api_tokens t SET secret_hash = $2 FROM file_servers f
		WHERE f.activated_hash = $1 AND f.activated_at > now() - make_interval(secs => $3)
		AND t.id = f.agent_token_id AND t.last_used_at IS NULL AND t.revoked_at IS NULL
		RETURNING f.id::text`, activationHash, credentialHash, activationRetryWindow.Seconds()).Scan(&fileServerID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrBadActivation
	}
	return fileServerID, err
}

// AgentCallIn maps an agent's token to its file server and records that
// the agent is alive.
func (d *DB) AgentCallIn(ctx context.Context, tokenID string) (string, error) {
	var id string
	err := d.Pool.QueryRow(ctx, `UPDATE file_servers SET agent_last_seen = now() WHERE agent_token_id = $1 RETURNING id::text`, tokenID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	return id, err
}

// Dispatch is what a running job hands to an agent, kept with the job so
// any replica can serve the agent's calls for it.
type Dispatch struct {
	Kind        string   `json:"kind"`
	StorageID   string   `json:"storage_id"`
	SessionID   string   `json:"session_id,omitempty"`
	ParentPoint string   `json:"parent_point,omitempty"`
	ParentRoot  string   `json:"parent_root,omitempty"`
	PointID     string   `json:"point_id,omitempty"`
	Root        string   `json:"root,omitempty"`
	Target      string   `json:"target,omitempty"`
	Paths       []string `json:"paths,omitempty"`
	Exclude     []string `json:"exclude,omitempty"`
	Include     []string `json:"include,omitempty"`
	Conflict    string   `json:"conflict,omitempty"`
	Resume      bool     `json:"resume,omitempty"`
	// RestoreInclude and RestoreExclude are a restore's globs (Include and
	// Exclude above are a backup's include paths and exclude globs).
	RestoreInclude []string `json:"restore_include,omitempty"`
	RestoreExclude []string `json:"restore_exclude,omitempty"`
	StartedAt      string   `json:"started_at,omitempty"`
	// CapPolicyID names the policy whose bandwidth cap the agent's
	// uploads follow; empty for runs that are not capped (on demand).
	CapPolicyID string `json:"cap_policy_id,omitempty"`
	// FilesTotal and BytesTotal are what a restore will write, from its
	// point's stats (zero: unknown); the server adds them to the agent's
	// reports, which count only what it has written.
	FilesTotal int64 `json:"files_total,omitempty"`
	BytesTotal int64 `json:"bytes_total,omitempty"`
	// Workload names the hub extension of a workload other than files
	// (databases), which reads Work and fills in the agent's work;
	// PointKind is the kind of point a backup asks for (the extension may
	// commit another: a differential converted to a full). Roots are
	// further points a restore reads (the logs of a point-in-time
	// restore) besides Root.
	Workload  string          `json:"workload,omitempty"`
	Work      json.RawMessage `json:"work,omitempty"`
	PointKind string          `json:"point_kind,omitempty"`
	Roots     []string        `json:"roots,omitempty"`
}

// DispatchJob hands a running job to a file server's agent.
func (d *DB) DispatchJob(ctx context.Context, jobID, fileServerID string, dsp Dispatch) error {
	b, err := json.Marshal(dsp)
	if err != nil {
		return err
	}
	_, err = d.Pool.Exec(ctx, `UPDATE jobs SET agent_fs = $2, dispatch = $3, dispatched_at = now(), claimed_instance = NULL, agent_error = NULL
		WHERE id = $1`, jobID, fileServerID, b)
	return err
}

// ClearDispatch takes a job back from its agent.
func (d *DB) ClearDispatch(ctx context.Context, jobID string) error {
	_, err := d.Pool.Exec(ctx, `UPDATE jobs SET dispatched_at = NULL, claimed_instance = NULL WHERE id = $1`, jobID)
	return err
}

// ClaimWork gives an agent process the oldest dispatched job it is not
// running (running lists those it is). A job claimed by an earlier
// process of the same agent (it restarted), or by this one before it let
// the job go, is handed out again.
func (d *DB) ClaimWork(ctx context.Context, fileServerID, instance string, running []string) (jobID string, dsp Dispatch, ok bool, err error) {
	var raw []byte
	err = d.Pool.QueryRow(ctx, `UPDATE jobs SET claimed_instance = $2 WHERE id = (
			SELECT id FROM jobs WHERE agent_fs = $1 AND state = 'running' AND dispatched_at IS NOT NULL
			AND agent_error IS NULL AND (claimed_instance IS DISTINCT FROM $2 OR NOT id::text = ANY(coalesce($3::text[], '{}')))
			ORDER BY dispatched_at LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING id::text, dispatch`, fileServerID, instance, running).Scan(&jobID, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", dsp, false, nil
	}
	if err != nil {
		return "", dsp, false, err
	}
	return jobID, dsp, true, json.Unmarshal(raw, &dsp)
}

// AgentJob returns a job dispatched to this file server's agent, or
// ErrNotFound when it is not (or no longer) the agent's to work on.
func (d *DB) AgentJob(ctx context.Context, jobID, fileServerID string) (Dispatch, error) {
	var dsp Dispatch
	var raw []byte
	if !looksLikeUUID(jobID) {
		return dsp, ErrNotFound
	}
	err := d.Pool.QueryRow(ctx, `SELECT dispatch FROM jobs WHERE id = $1 AND agent_fs = $2 AND state = 'running' AND dispatched_at IS NOT NULL`,
		jobID, fileServerID).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return dsp, ErrNotFound
	}
	if err != nil {
		return dsp, err
	}
	return dsp, json.Unmarshal(raw, &dsp)
}

// AgentJobState is what the dispatching worker watches.
func (d *DB) AgentJobState(ctx context.Context, jobID string) (state, agentError string, claimed bool, err error) {
	var ae, ci *string
	err = d.Pool.QueryRow(ctx, `SELECT state, agent_error, claimed_instance FROM jobs WHERE id = $1`, jobID).Scan(&state, &ae, &ci)
	if ae != nil {
		agentError = *ae
	}
	return state, agentError, ci != nil, err
}

// SetAgentError records an agent's failure of the current attempt.
func (d *DB) SetAgentError(ctx context.Context, jobID, msg string) error {
	_, err := d.Pool.Exec(ctx, `UPDATE jobs SET agent_error = $2 WHERE id = $1 AND state = 'running'`, jobID, msg)
	return err
}

// AddStored counts bytes an agent's uploads added to the repository.
func (d *DB) AddStored(ctx context.Context, jobID string, newBytes, storedBytes int64) error {
	_, err := d.Pool.Exec(ctx, `UPDATE jobs SET new_bytes = new_bytes + $2, stored_bytes = stored_bytes + $3 WHERE id = $1`, jobID, newBytes, storedBytes)
	return err
}

// StoredBytes reads what an agent's uploads added.
func (d *DB) StoredBytes(ctx context.Context, q Querier, jobID string) (newBytes, storedBytes int64, err error) {
	err = q.QueryRow(ctx, `SELECT new_bytes, stored_bytes FROM jobs WHERE id = $1`, jobID).Scan(&newBytes, &storedBytes)
	return newBytes, storedBytes, err
}

// AgentCallInByFS records that a file server's agent is alive (it is
// long-polling).
func (d *DB) AgentCallInByFS(ctx context.Context, fileServerID string) (bool, error) {
	tag, err := d.Pool.Exec(ctx, `UPDATE file_servers SET agent_last_seen = now() WHERE id = $1`, fileServerID)
	return tag.RowsAffected() == 1, err
}
