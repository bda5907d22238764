package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// backUpNow runs an on-demand backup of a fileset to the end and returns
// the point it made, once retention has been applied to it: the server
// records the point's reasons and expiry right after the backup, and a
// test that compared attributes before that would race it.
func backUpNow(srv *servertest.Server, fileset string) (*api.Point, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	set, err := srv.Client.Filesets().Get(ctx, fileset)
	if err != nil {
		return nil, err
	}
	return backUpAsset(ctx, srv, set.ID)
}

// backUpAsset is backUpNow of any asset (fileset or protected VM), by id.
func backUpAsset(ctx context.Context, srv *servertest.Server, assetID string) (*api.Point, error) {
	j, err := srv.Client.BackupNow(ctx, assetID)
	if err != nil {
		return nil, fmt.Errorf("backup now: %w", err)
	}
	if j, err = srv.Client.WaitJob(ctx, j.ID, 100*time.Millisecond); err != nil {
		return nil, fmt.Errorf("waiting for backup job: %w", err)
	}
	if j.State != api.JobSucceeded || j.PointID == "" {
		return nil, fmt.Errorf("backup job ended %s without a point: %s", j.State, j.Error)
	}
	for {
		p, err := srv.Client.GetPoint(ctx, j.PointID)
		if err != nil {
			return nil, fmt.Errorf("point %s of backup job %s: %w", j.PointID, j.ID, err)
		}
		if len(p.Reasons) > 0 {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("retention was never applied to point %s: %+v", p.ID, p)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pointAttrsMatch compares the attributes of a point in a data source, at
// prefix ("" for haven_recovery_point, "points.N." in a list), with the
// point as the server holds it.
func pointAttrsMatch(attrs map[string]string, prefix string, p *api.Point) error {
	want := map[string]string{
		"id": p.ID, "asset_id": p.AssetID, "storage_id": p.StorageID, "kind": p.Kind, "tier": p.Tier,
		"started_at":    p.StartedAt.UTC().Format(time.RFC3339Nano),
		"completed_at":  p.CompletedAt.UTC().Format(time.RFC3339Nano),
		"logical_bytes": strconv.FormatInt(p.LogicalBytes, 10),
		"new_bytes":     strconv.FormatInt(p.NewBytes, 10),
		"stored_bytes":  strconv.FormatInt(p.StoredBytes, 10),
		"files":         strconv.FormatInt(p.Files, 10),
		"legal_hold":    strconv.FormatBool(p.LegalHold),
		"reasons.#":     strconv.Itoa(len(p.Reasons)),
	}
	for i, r := range p.Reasons {
		want["reasons."+strconv.Itoa(i)] = r
	}
	for k, v := range want {
		if got, ok := attrs[prefix+k]; !ok || got != v {
			return fmt.Errorf("%s%s = %q, want %q (the server's point %s)", prefix, k, got, v, p.ID)
		}
	}
	got, ok := attrs[prefix+"restorable_until"]
	switch {
	case p.RestorableUntil == nil && ok:
		return fmt.Errorf("%srestorable_until = %q, want null", prefix, got)
	case p.RestorableUntil != nil && got != p.RestorableUntil.UTC().Format(time.RFC3339Nano):
		return fmt.Errorf("%srestorable_until = %q, want %s", prefix, got, p.RestorableUntil)
	}
	return nil
}

// pointIDsAre checks a haven_recovery_points list: these points, in this
// order, each with the server's attributes.
func pointIDsAre(srv *servertest.Server, addr string, ids ...*string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources[addr]
		if rs == nil {
			return fmt.Errorf("%s is not in the state", addr)
		}
		if n := rs.Primary.Attributes["points.#"]; n != strconv.Itoa(len(ids)) {
			return fmt.Errorf("%s lists %s points, want %d", addr, n, len(ids))
		}
		for i, id := range ids {
			p, err := srv.Client.GetPoint(context.Background(), *id)
			if err != nil {
				return err
			}
			if err := pointAttrsMatch(rs.Primary.Attributes, fmt.Sprintf("points.%d.", i), p); err != nil {
				return fmt.Errorf("%s: %w", addr, err)
			}
		}
		return nil
	}
}

// pointIs checks a haven_recovery_point against the server's point.
func pointIs(srv *servertest.Server, addr string, id *string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources[addr]
		if rs == nil {
			return fmt.Errorf("%s is not in the state", addr)
		}
		p, err := srv.Client.GetPoint(context.Background(), *id)
		if err != nil {
			return err
		}
		if err := pointAttrsMatch(rs.Primary.Attributes, "", p); err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
		return nil
	}
}

// pagingProviderFactories serves a provider that lists points one per
// page, so that two points already take following next_page_token.
var pagingProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"haven": providerserver.NewProtocol6WithError(&havenProvider{version: "test", pointsPageSize: 1}),
}

// TestAccRecoveryPointDataSources backs a directory up twice, changing a
// file in between, then finds the points with both data sources and
// restores the older one, picked by time, with haven_restore.
func TestAccRecoveryPointDataSources(t *testing.T) {
	srv := startParallel(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := writeSourceTree(t, src)
	target := filepath.Join(dir, "restored")

	var first, second *api.Point
	var firstID, secondID, atMid, atFirst, atEarly string
	twoPoints := func(*terraform.State) error {
		var err error
		if first, err = backUpNow(srv, "docs"); err != nil {
			return err
		}
		// Held before the second backup, whose retention run then records
		// the hold among the first point's reasons.
		if _, err := srv.Client.SetLegalHold(context.Background(), first.ID, true); err != nil {
			return err
		}
		// The second point must complete at a later microsecond than the
		// first, or "at or before" could not tell them apart.
		time.Sleep(10 * time.Millisecond)
		if err := os.WriteFile(filepath.Join(src, "readme.txt"), []byte("changed after the first backup\n"), 0o644); err != nil {
			return err
		}
		if second, err = backUpNow(srv, "docs"); err != nil {
			return err
		}
		if first.Kind != api.BackupFull || second.Kind != api.BackupIncremental {
			return fmt.Errorf("backups made a %s then a %s point, want full then incremental", first.Kind, second.Kind)
		}
		if !second.CompletedAt.After(first.CompletedAt) {
			return fmt.Errorf("second point completed at %s, not after the first (%s)", second.CompletedAt, first.CompletedAt)
		}
		firstID, secondID = first.ID, second.ID
		mid := first.CompletedAt.Add(second.CompletedAt.Sub(first.CompletedAt) / 2)
		atMid = mid.UTC().Format(time.RFC3339Nano)
		// The exact completion time, in another zone: "at or before"
		// includes it.
		atFirst = first.CompletedAt.In(time.FixedZone("IST", 5*3600+1800)).Format(time.RFC3339Nano)
		atEarly = first.CompletedAt.Add(-time.Microsecond).UTC().Format(time.RFC3339Nano)
		return nil
	}

	base := providerConfig(srv) + protectionConfig(filepath.Join(dir, "store")) +
		filesetConfig("docs", []string{src}, "") + `
variable "at_mid" {
  type = string
}

variable "at_first" {
  type = string
}
`
	vars := config.Variables{"at_mid": lazyString{&atMid}, "at_first": lazyString{&atFirst}}
	lookups := base + fmt.Sprintf(`
data "haven_recovery_point" "latest" {
  asset_id = haven_fileset.test.id
}

data "haven_recovery_point" "before_change" {
  asset_id = haven_fileset.test.id
  at       = var.at_mid
}

data "haven_recovery_point" "exactly_first" {
  asset_id = haven_fileset.test.id
  at       = var.at_first
}

data "haven_recovery_point" "latest_full" {
  asset_id = haven_fileset.test.id
  kind     = "full"
}

# A fileset has no log points: the point that covers a time is the
# latest that completed at or before it, as with at.
data "haven_recovery_point" "covers_mid" {
  asset_id    = haven_fileset.test.id
  covers_time = var.at_mid
}

data "haven_recovery_points" "all" {
  asset_id = haven_fileset.test.id
}

data "haven_recovery_points" "everywhere" {}

data "haven_recovery_points" "newest" {
  asset_id = haven_fileset.test.id
  limit    = 1
}

data "haven_recovery_points" "incrementals" {
  asset_id = haven_fileset.test.id
  kind     = "incremental"
}

data "haven_recovery_points" "warm_after_mid" {
  asset_id      = haven_fileset.test.id
  tier          = "warm"
  created_after = var.at_mid
}

data "haven_recovery_points" "before_mid" {
  asset_id       = haven_fileset.test.id
  created_before = var.at_mid
}

data "haven_recovery_points" "cold" {
  tier = "cold"
}

resource "haven_restore" "before_change" {
  point_id    = data.haven_recovery_point.before_change.id
  target_path = %q
}
`, target)

	resource.Test(t, resource.TestCase{
		// One point per page: every list below follows next_page_token.
		ProtoV6ProviderFactories: pagingProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:          base,
				ConfigVariables: vars,
				Check:           twoPoints,
			},
			{
				Config:          lookups,
				ConfigVariables: vars,
				Check: resource.ComposeAggregateTestCheckFunc(
					pointIs(srv, "data.haven_recovery_point.latest", &secondID),
					pointIs(srv, "data.haven_recovery_point.before_change", &firstID),
					pointIs(srv, "data.haven_recovery_point.exactly_first", &firstID),
					pointIs(srv, "data.haven_recovery_point.latest_full", &firstID),
					pointIs(srv, "data.haven_recovery_point.covers_mid", &firstID),
					resource.TestCheckResourceAttrPtr("data.haven_recovery_point.covers_mid", "covers_time", &atMid),
					// File points have no log span and no database details.
					resource.TestCheckNoResourceAttr("data.haven_recovery_point.covers_mid", "log_start"),
					resource.TestCheckNoResourceAttr("data.haven_recovery_point.covers_mid", "database.%"),
					resource.TestCheckNoResourceAttr("data.haven_recovery_points.all", "points.0.database.%"),
					resource.TestCheckResourceAttrPtr("data.haven_recovery_point.before_change", "at", &atMid),
					resource.TestCheckResourceAttr("data.haven_recovery_point.before_change", "legal_hold", "true"),
					resource.TestCheckTypeSetElemAttr("data.haven_recovery_point.before_change", "reasons.*", "legal_hold"),
					resource.TestCheckResourceAttr("data.haven_recovery_point.latest", "legal_hold", "false"),
					resource.TestCheckResourceAttr("data.haven_recovery_point.latest", "reasons.#", "1"),
					resource.TestCheckResourceAttr("data.haven_recovery_point.latest", "reasons.0", "daily"),
					resource.TestCheckResourceAttrSet("data.haven_recovery_point.latest", "restorable_until"),
					pointIDsAre(srv, "data.haven_recovery_points.all", &secondID, &firstID),
					pointIDsAre(srv, "data.haven_recovery_points.everywhere", &secondID, &firstID),
					pointIDsAre(srv, "data.haven_recovery_points.newest", &secondID),
					pointIDsAre(srv, "data.haven_recovery_points.incrementals", &secondID),
					pointIDsAre(srv, "data.haven_recovery_points.warm_after_mid", &secondID),
					pointIDsAre(srv, "data.haven_recovery_points.before_mid", &firstID),
					pointIDsAre(srv, "data.haven_recovery_points.cold"),
					resource.TestCheckResourceAttrPtr("haven_restore.before_change", "point_id", &firstID),
					resource.TestCheckResourceAttr("haven_restore.before_change", "state", api.JobSucceeded),
					// The restore brings back the files as the first backup
					// found them, below target at their absolute paths.
					checkRestoredTree(target, src, files, func(string) bool { return true }),
				),
			},
			{
				Config: lookups + `
variable "at_early" {
  type = string
}

data "haven_recovery_point" "too_early" {
  asset_id = haven_fileset.test.id
  at       = var.at_early
}
`,
				ConfigVariables: config.Variables{"at_mid": lazyString{&atMid}, "at_first": lazyString{&atFirst},
					"at_early": lazyString{&atEarly}},
				// The asset's id and the time are only known once the
				// test runs; their shapes are enough here.
				ExpectError: regexp.MustCompile(`(?s)No matching recovery point.*No recovery point exists for asset\s+` +
					`[0-9a-f-]{36}\s+that\s+completed\s+at\s+or\s+before\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z`),
			},
			{
				Config: lookups + `
data "haven_recovery_point" "no_logs" {
  asset_id = haven_fileset.test.id
  kind     = "log"
}
`,
				ConfigVariables: vars,
				ExpectError:     errorLike("No matching recovery point", "No log recovery point exists for asset"),
			},
			{
				// A point on legal hold refuses even a forced destroy of
				// its storage: the hold is released before the test's.
				PreConfig: func() {
					if _, err := srv.Client.SetLegalHold(context.Background(), firstID, false); err != nil {
						t.Fatal(err)
					}
				},
				Config:          base,
				ConfigVariables: vars,
			},
		},
	})
}
