package db

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// DRCopy is one disk's copy in EBS (a dr_copies row). A superseded copy
// was replaced by a newer one and waits for its snapshot's deletion.
type DRCopy struct {
	PlanID, ProtectedVMID string
	DiskKey               int32
	SnapshotID            string
	PointID               string
	PointTime             time.Time
	DiskManifest          string
	VolumeGiB             int64
	BlockSize             int32
	CopiedAt              time.Time
	Superseded            bool
	// BootMode is the EC2 boot mode of the point's VM ("" when unknown).
	BootMode string
}

const drCopyColumns = `plan_id::text, protected_vm_id::text, disk_key, snapshot_id, point_id::text, point_time, disk_manifest,
	volume_gib, block_size, copied_at, superseded_at IS NOT NULL, boot_mode`

// DRCopies lists a plan's copies, current and superseded, by VM and disk.
func (d *DB) DRCopies(ctx context.Context, planID string) ([]DRCopy, error) {
	rows, err := d.Pool.Query(ctx, `SELECT `+drCopyColumns+` FROM dr_copies WHERE plan_id = $1
		ORDER BY protected_vm_id, disk_key, copied_at`, planID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DRCopy, error) {
		var c DRCopy
		err := r.Scan(&c.PlanID, &c.ProtectedVMID, &c.DiskKey, &c.SnapshotID, &c.PointID, &c.PointTime, &c.DiskManifest,
			&c.VolumeGiB, &c.BlockSize, &c.CopiedAt, &c.Superseded, &c.BootMode)
		return c, err
	})
}

// RecordDRCopy records a completed copy as its disk's current one and,
// in the same transaction, marks the copy it replaces superseded (its
// snapshot is deleted next, then its row: DeleteDRCopy). Recording the
// same copy twice changes nothing.
func (d *DB) RecordDRCopy(ctx context.Context, c DRCopy) error {
	return d.InTx(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dr_copies WHERE plan_id = $1 AND protected_vm_id = $2 AND disk_key = $3
			AND snapshot_id = $4)`, c.PlanID, c.ProtectedVMID, c.DiskKey, c.SnapshotID).Scan(&exists); err != nil || exists {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE dr_copies SET superseded_at = now() WHERE plan_id = $1 AND protected_vm_id = $2 AND disk_key = $3
			AND superseded_at IS NULL`, c.PlanID, c.ProtectedVMID, c.DiskKey); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO dr_copies (plan_id, protected_vm_id, disk_key, snapshot_id, point_id, point_time, disk_manifest, volume_gib, block_size, boot_mode)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			c.PlanID, c.ProtectedVMID, c.DiskKey, c.SnapshotID, c.PointID, c.PointTime, c.DiskManifest, c.VolumeGiB, c.BlockSize, c.BootMode)
		return err
	})
}

// DeleteDRCopy removes a superseded copy's row, once its snapshot is gone.
func (d *DB) DeleteDRCopy(ctx context.Context, c DRCopy) error {
	_, err := d.Pool.Exec(ctx, `DELETE FROM dr_copies WHERE plan_id = $1 AND protected_vm_id = $2 AND disk_key = $3 AND snapshot_id = $4
		AND superseded_at IS NOT NULL`, c.PlanID, c.ProtectedVMID, c.DiskKey, c.SnapshotID)
	return err
}

// DRSnapshotFailures is how many snapshots of a disk point AWS put in the
// error state.
func (d *DB) DRSnapshotFailures(ctx context.Context, planID, vmID string, diskKey int32, pointID string) (int, error) {
	var n int
	err := d.Pool.QueryRow(ctx, `SELECT failures FROM dr_snapshot_failures WHERE plan_id = $1 AND protected_vm_id = $2 AND disk_key = $3 AND point_id = $4`,
		planID, vmID, diskKey, pointID).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// AddDRSnapshotFailure counts one more failed snapshot of a disk point.
func (d *DB) AddDRSnapshotFailure(ctx context.Context, planID, vmID string, diskKey int32, pointID string) error {
	_, err := d.Pool.Exec(ctx, `INSERT INTO dr_snapshot_failures (plan_id, protected_vm_id, disk_key, point_id, failures) VALUES ($1, $2, $3, $4, 1)
		ON CONFLICT (plan_id, protected_vm_id, disk_key, point_id) DO UPDATE SET failures = dr_snapshot_failures.failures + 1`,
		planID, vmID, diskKey, pointID)
	return err
}

// DRInstanceType is a plan VM's resolved instance type and its reason.
type DRInstanceType struct {
	Type, Reason string
}

// SetDRInstanceType records the instance type a plan's VM launches as.
func (d *DB) SetDRInstanceType(ctx context.Context, planID, vmID string, t DRInstanceType) error {
	_, err := d.Pool.Exec(ctx, `INSERT INTO dr_vm_state (plan_id, protected_vm_id, instance_type, instance_type_reason) VALUES ($1, $2, $3, $4)
		ON CONFLICT (plan_id, protected_vm_id) DO UPDATE SET instance_type = excluded.instance_type, instance_type_reason = excluded.instance_type_reason`,
		planID, vmID, t.Type, t.Reason)
	return err
}

// DRInstanceTypes are a plan's resolved instance types by protected VM.
func (d *DB) DRInstanceTypes(ctx context.Context, planID string) (map[string]DRInstanceType, error) {
	rows, err := d.Pool.Query(ctx, `SELECT protected_vm_id::text, instance_type, instance_type_reason FROM dr_vm_state WHERE plan_id = $1`, planID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]DRInstanceType{}
	for rows.Next() {
		var id string
		var t DRInstanceType
		if err := rows.Scan(&id, &t.Type, &t.Reason); err != nil {
			return nil, err
		}
		out[id] = t
	}
	return out, rows.Err()
}

// LastDRJob is a plan's newest job of a kind, or ErrNotFound.
func (d *DB) LastDRJob(ctx context.Context, planID, kind string) (api.Job, error) {
	return scanJob(d.Pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE kind = $1 AND params->>'plan_id' = $2
		ORDER BY created_at DESC, id DESC LIMIT 1`, kind, planID))
}

// PlansUsing names the DR plans whose spec field refers to id (the first
// by name) and how many there are.
func (d *DB) PlansUsing(ctx context.Context, field, id string) (n int, first string, err error) {
	err = d.Pool.QueryRow(ctx, `SELECT count(*) OVER (), name FROM dr_plans WHERE spec->>$1 = $2 ORDER BY name LIMIT 1`, field, id).Scan(&n, &first)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", nil
	}
	return n, first, err
}

// PlansWithVM names the DR plans that list a protected VM.
func (d *DB) PlansWithVM(ctx context.Context, vmID string) (n int, first string, err error) {
	err = d.Pool.QueryRow(ctx, `SELECT count(*) OVER (), name FROM dr_plans
		WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(spec->'vms') v WHERE v->>'protected_vm_id' = $1) ORDER BY name LIMIT 1`, vmID).Scan(&n, &first)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", nil
	}
	return n, first, err
}
