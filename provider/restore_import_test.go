package provider

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// restoreJobs counts the restore jobs of the fileset docs.
func restoreJobs(srv *servertest.Server) (int, error) {
	ctx := context.Background()
	set, err := srv.Client.Filesets().Get(ctx, "docs")
	if err != nil {
		return 0, err
	}
	l, err := srv.Client.ListJobs(ctx, api.JobFilter{AssetID: set.ID, Kind: api.JobRestore}, "", 100)
	if err != nil {
		return 0, err
	}
	return len(l.Items), nil
}

func wantRestoreJobs(srv *servertest.Server, n int) resource.TestCheckFunc {
	return func(*terraform.State) error {
		got, err := restoreJobs(srv)
		if err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("%d restore jobs on the server, want %d", got, n)
		}
		return nil
	}
}

// TestAccRestoreResource_import adopts a restore run outside Terraform by
// its job id, with an import block and with terraform import: the job's
// point, state and progress come into the state, the first plan adopts
// the configuration without restoring again, and later changes do.
func TestAccRestoreResource_import(t *testing.T) {
	srv := startParallel(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := writeSourceTree(t, src)
	adoptTarget, newTarget := filepath.Join(dir, "adopted"), filepath.Join(dir, "again")
	base := providerConfig(srv) + protectionConfig(filepath.Join(dir, "store")) + filesetConfig("docs", []string{src}, "")

	var pointID, backupJobID, restoreJobID string
	restoreOutside := func(*terraform.State) error {
		p, err := backUpNow(srv, "docs")
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		backups, err := srv.Client.ListJobs(ctx, api.JobFilter{Kind: api.JobBackup}, "", 1)
		if err != nil || len(backups.Items) != 1 {
			return fmt.Errorf("finding the backup job: %v", err)
		}
		j, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: p.ID, TargetPath: adoptTarget, Conflict: "skip"})
		if err != nil {
			return err
		}
		if j, err = srv.Client.WaitJob(ctx, j.ID, 100*time.Millisecond); err != nil || j.State != api.JobSucceeded {
			return fmt.Errorf("restore outside Terraform: %v %+v", err, j)
		}
		pointID, backupJobID, restoreJobID = p.ID, backups.Items[0].ID, j.ID
		return nil
	}
	adopted := func(target string) string {
		return base + fmt.Sprintf(`
variable "point_id" {
  type = string
}

variable "job_id" {
  type = string
}

resource "haven_restore" "adopted" {
  point_id    = var.point_id
  target_path = %q
  conflict    = "skip"
}
`, target)
	}
	const importBlock = `
import {
  to = haven_restore.adopted
  id = var.job_id
}
`
	vars := config.Variables{"point_id": lazyString{&pointID}, "job_id": lazyString{&restoreJobID}}
	const addr = "haven_restore.adopted"

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{Config: base, Check: restoreOutside},
			{
				Config:          adopted(adoptTarget) + importBlock,
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					// Adopted, not replaced: no second restore.
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, at("id"), lazyCheck("the restore job's id", func(v any) error {
						if v != restoreJobID {
							return fmt.Errorf("id %v, want job %s", v, restoreJobID)
						}
						return nil
					})),
					statecheck.ExpectKnownValue(addr, at("state"), knownvalue.StringExact(api.JobSucceeded)),
					statecheck.ExpectKnownValue(addr, at("files_restored"), knownvalue.Int64Exact(int64(len(files)))),
					statecheck.ExpectKnownValue(addr, at("target_path"), knownvalue.StringExact(adoptTarget)),
					statecheck.ExpectKnownValue(addr, at("restored_vm_name"), knownvalue.Null()),
				},
				Check: wantRestoreJobs(srv, 1),
			},
			{
				Config:          adopted(adoptTarget),
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
			},
			{
				// Adoption is once: a new target now restores again.
				Config:          adopted(newTarget),
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionReplace),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					wantRestoreJobs(srv, 2),
					checkRestoredTree(newTarget, src, files, func(string) bool { return true }),
				),
			},
			{
				// terraform import of the job the last apply ran; the job
				// record does not hold the request's other arguments.
				ResourceName:            addr,
				ConfigVariables:         vars,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"target_path", "conflict"},
			},
			{
				Config: adopted(newTarget) + `
import {
  to = haven_restore.backup
  id = var.backup_job_id
}

resource "haven_restore" "backup" {
  point_id = var.point_id
}

variable "backup_job_id" {
  type = string
}
`,
				ConfigVariables: config.Variables{"point_id": lazyString{&pointID}, "job_id": lazyString{&restoreJobID},
					"backup_job_id": lazyString{&backupJobID}},
				ExpectError: errorLike("is not a restore", "is a backup job; haven_restore can only import restore jobs"),
			},
			{
				Config: adopted(newTarget) + `resource "haven_restore" "bad" { point_id = var.point_id }` + "\n" + `import {
  to = haven_restore.bad
  id = "restore-42"
}`,
				ConfigVariables: vars,
				ExpectError:     errorLike("Invalid restore job id", `got "restore-42"`),
			},
			{Config: adopted(newTarget), ConfigVariables: vars},
		},
	})
}
