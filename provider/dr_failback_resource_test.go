package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

const (
	drFailbackAddr = "haven_dr_failback.home"
	failbackVM     = "app-01-failback"
)

// TestAccDRFailbackResource: power_on without final fails the plan naming
// it. A first pass of a failover makes VM app-01-failback on the vCenter,
// powered off, holding app-01's disk as it was failed over, while the run
// stays ready with its failback synced. Setting final and power_on
// replaces the resource, which runs the final pass: it reads no block
// (nothing changed in AWS), powers the VM on, and the run is failed_back.
// A further pass is refused by the server, naming why. Destroying the
// failback leaves the VM on the vCenter.
func TestAccDRFailbackResource(t *testing.T) {
	e := newDRRunEnv(t)
	config := func(final, powerOn bool, extra string) string {
		return providerConfig(e.srv) + fmt.Sprintf(`
resource "haven_dr_failover" "site" {
  plan_id              = %q
  confirm_failover     = true
  terminate_on_destroy = true
}

resource "haven_dr_failback" "home" {
  run_id     = haven_dr_failover.site.id
  vcenter_id = %q
  final      = %t
  power_on   = %t
%s
}
`, e.planID, e.vcenterID, final, powerOn, extra)
	}
	passID := statecheck.CompareValue(compare.ValuesDiffer())
	vm := func(attr string) tfjsonpath.Path { return at("vms", 0, attr) }
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy: func(s *terraform.State) error {
			_, err := e.failbackVM(true) // as the final pass left it
			return errors.Join(err, e.checkCleanedUp(s))
		},
		Steps: []resource.TestStep{
			{
				Config:      config(false, true, ""),
				PlanOnly:    true,
				ExpectError: errorLike("power_on without final", "Attribute power_on needs final = true"),
			},
			{
				Config: config(false, false, ""),
				ConfigStateChecks: []statecheck.StateCheck{
					passID.AddStateValue(drFailbackAddr, at("id")),
					statecheck.ExpectKnownValue(drFailbackAddr, at("state"), knownvalue.StringExact(api.DRFailbackSynced)),
					statecheck.ExpectKnownValue(drFailbackAddr, at("passes"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(drFailbackAddr, at("vms"), knownvalue.ListSizeExact(1)),
					statecheck.ExpectKnownValue(drFailbackAddr, vm("machine"), knownvalue.StringExact("app-01")),
					statecheck.ExpectKnownValue(drFailbackAddr, vm("vm_name"), knownvalue.StringExact(failbackVM)),
					statecheck.ExpectKnownValue(drFailbackAddr, vm("point_id"), knownvalue.StringRegexp(uuidShaped)),
					statecheck.ExpectKnownValue(drFailbackAddr, vm("powered_on"), knownvalue.Bool(false)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(e.checkFailback(api.DRRunReady, api.DRFailbackSynced, false), readWholeBlocks),
			},
			{
				// final alone replaces the resource too: that is how the
				// final pass runs.
				Config:             config(true, false, ""),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(drFailbackAddr, plancheck.ResourceActionDestroyBeforeCreate),
				}},
			},
			{
				Config: config(true, true, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(drFailbackAddr, plancheck.ResourceActionDestroyBeforeCreate),
					plancheck.ExpectResourceAction("haven_dr_failover.site", plancheck.ResourceActionNoop),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					passID.AddStateValue(drFailbackAddr, at("id")),
					statecheck.ExpectKnownValue(drFailbackAddr, at("state"), knownvalue.StringExact(api.DRFailbackCompleted)),
					statecheck.ExpectKnownValue(drFailbackAddr, at("passes"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue(drFailbackAddr, vm("blocks_read"), knownvalue.Int64Exact(0)),
					statecheck.ExpectKnownValue(drFailbackAddr, vm("powered_on"), knownvalue.Bool(true)),
				},
				Check: e.checkFailback(api.DRRunFailedBack, api.DRFailbackCompleted, true),
			},
			{
				Config:      config(true, true, `  names = { "app-01" = "app-01-again" }`),
				ExpectError: errorLike("Could not start a failback of DR run", "was failed back already"),
			},
		},
	})
}

// readWholeBlocks checks that the pass in the state read some of the
// instance's EBS blocks, and as many bytes as they hold.
func readWholeBlocks(s *terraform.State) error {
	a := s.RootModule().Resources[drFailbackAddr].Primary.Attributes
	blocks, err := strconv.ParseInt(a["vms.0.blocks_read"], 10, 64)
	if err != nil || blocks == 0 || a["vms.0.bytes_read"] != strconv.FormatInt(blocks*testparts.MotoBlockSize, 10) {
		return fmt.Errorf("the pass read %s blocks (%v) and %s bytes, want some blocks of %d bytes",
			a["vms.0.blocks_read"], err, a["vms.0.bytes_read"], testparts.MotoBlockSize)
	}
	return nil
}

// checkFailback checks the run of the failback in the state: runState,
// with its failback in fbState as of the state's pass, and its VM on the
// vCenter as the state records it, holding app-01's disk as it was failed
// over.
func (e *drRunEnv) checkFailback(runState, fbState string, poweredOn bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[drFailbackAddr]
		if !ok {
			return fmt.Errorf("%s is not in the state", drFailbackAddr)
		}
		run, err := e.srv.Client.DRRun(context.Background(), rs.Primary.Attributes["run_id"])
		if err != nil || run.State != runState || run.Failback == nil || run.Failback.State != fbState || run.Failback.JobID != rs.Primary.ID {
			return fmt.Errorf("the run on the server: %v %+v, want %s with its failback %s by pass %s", err, run, runState, fbState, rs.Primary.ID)
		}
		got, err := e.failbackVM(poweredOn)
		if err != nil {
			return err
		}
		if want := rs.Primary.Attributes["vms.0.vm_instance_uuid"]; got.InstanceUUID != want {
			return fmt.Errorf("%s has instance UUID %s, the state records %s", failbackVM, got.InstanceUUID, want)
		}
		return nil
	}
}

// failbackVM checks that the failback's VM is on the vCenter, powered on
// or not, with app-01's disk as it was failed over.
func (e *drRunEnv) failbackVM(poweredOn bool) (*api.VM, error) {
	ctx := context.Background()
	vms, err := e.srv.Client.VMs(ctx, e.vcenterID, api.VMFilter{Name: failbackVM})
	if err != nil || len(vms) != 1 {
		return nil, fmt.Errorf("VM %s on the vCenter: %v %+v", failbackVM, err, vms)
	}
	if on := vms[0].PowerState == "poweredOn"; on != poweredOn {
		return nil, fmt.Errorf("VM %s is %s, want powered on %t", failbackVM, vms[0].PowerState, poweredOn)
	}
	disk, err := e.vc.Lab.DiskBytes(ctx, failbackVM, 0)
	if err != nil || !bytes.Equal(disk, e.disk) {
		return nil, fmt.Errorf("VM %s's disk (%d bytes, %v) differs from app-01's as failed over (%d bytes)", failbackVM, len(disk), err, len(e.disk))
	}
	return &vms[0], nil
}
