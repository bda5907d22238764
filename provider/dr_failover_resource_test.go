package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

const drFailoverAddr = "haven_dr_failover.site"

// TestAccDRFailoverResource: confirm_failover = false fails the plan
// naming it, and nothing reaches the server. A confirmed failover whose
// machine cannot launch (its subnet does not exist) fails the apply and is
// tainted; once the plan is fixed, the next apply continues the same run,
// which launches the machine in the production subnet. Destroying it by
// default leaves the instance running. Imported back by its run id, with
// terminate_on_destroy = true (an update in place), destroy removes
// everything the failover created.
func TestAccDRFailoverResource(t *testing.T) {
	e := newDRRunEnv(t)
	config := func(confirm bool, extra string) string {
		return providerConfig(e.srv) + fmt.Sprintf(`
resource "haven_dr_failover" "site" {
  plan_id          = %q
  confirm_failover = %t
%s
}
`, e.planID, confirm, extra)
	}
	var runID string
	// ready_timeout_minutes is not recorded on the server: the first plan
	// after the import adopts it without replacing the failover.
	const adopted = "  terminate_on_destroy  = true\n  ready_timeout_minutes = 20"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             e.checkCleanedUp,
		Steps: []resource.TestStep{
			{
				Config:      config(false, ""),
				PlanOnly:    true,
				ExpectError: errorLike("Failover not confirmed", "Attribute confirm_failover must be true"),
			},
			{
				// A subnet that does not exist: the launch fails.
				PreConfig: func() { e.setSubnet(t, "subnet-0123456789abcdef0") },
				Config:    config(true, ""),
				ExpectError: errorLike("Failover", "failed", "the failover did not finish", "subnet-0123456789abcdef0",
					"What the failover launched stays in AWS", "the next apply continues this failover under the same id"),
			},
			{
				PreConfig: func() { e.setSubnet(t, e.prod) },
				Config:    config(true, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(drFailoverAddr, plancheck.ResourceActionDestroyBeforeCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(drFailoverAddr, at("state"), knownvalue.StringExact(api.DRRunReady)),
					statecheck.ExpectKnownValue(drFailoverAddr, at("passed"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(drFailoverAddr, at("rto_seconds"), knownvalue.NotNull()),
					statecheck.ExpectKnownValue(drFailoverAddr, at("terminate_on_destroy"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(drFailoverAddr, at("machines", 0, "subnet_id"), knownvalue.StringExact(e.prod)),
					statecheck.ExpectKnownValue(drFailoverAddr, at("machines", 0, "instance_id"), knownvalue.StringRegexp(regexp.MustCompile(`^i-[0-9a-f]+$`))),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					e.checkRunning(drFailoverAddr, e.prod),
					func(s *terraform.State) error {
						runID = s.RootModule().Resources[drFailoverAddr].Primary.ID
						// The failed failover was continued under its id,
						// and the refused plan started nothing.
						runs, err := e.srv.Client.DRRuns(context.Background(), e.planID, api.DRRunFailover)
						if err != nil || len(runs) != 1 || runs[0].ID != runID {
							return fmt.Errorf("the plan's failovers: %v %+v, want only %s", err, runs, runID)
						}
						return nil
					}),
			},
			{
				// Destroyed with the default terminate_on_destroy: forgotten.
				Config: providerConfig(e.srv),
				Check: func(*terraform.State) error {
					_, err := e.runningInstance(runID, e.prod)
					return err
				},
			},
			{
				Config:             config(true, adopted),
				ResourceName:       drFailoverAddr,
				ImportState:        true,
				ImportStateIdFunc:  func(*terraform.State) (string, error) { return runID, nil },
				ImportStatePersist: true,
				ImportStateCheck: func(states []*terraform.InstanceState) error {
					if len(states) != 1 || states[0].ID != runID || states[0].Attributes["state"] != api.DRRunReady ||
						states[0].Attributes["plan_id"] != e.planID || states[0].Attributes["confirm_failover"] != "true" {
						return fmt.Errorf("imported %+v, want run %s", states, runID)
					}
					return nil
				},
			},
			{
				Config: config(true, adopted),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(drFailoverAddr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(drFailoverAddr, at("terminate_on_destroy"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(drFailoverAddr, at("ready_timeout_minutes"), knownvalue.Int64Exact(20)),
					statecheck.ExpectKnownValue(drFailoverAddr, at("id"), lazyCheck("the imported run's id", func(v any) error {
						if v != runID {
							return fmt.Errorf("id %v, want the imported run %s", v, runID)
						}
						return nil
					})),
				},
			},
		},
	})
}

// setSubnet changes the subnet of the plan's machine on the server.
func (e *drRunEnv) setSubnet(t *testing.T, subnet string) {
	p, err := e.srv.Client.DRPlans().Get(context.Background(), e.planID)
	if err == nil {
		p.VMs[0].SubnetID = subnet
		_, err = e.srv.Client.DRPlans().Update(context.Background(), p.ID, p.Version, api.DRPlanRequest{DRPlanSpec: p.DRPlanSpec})
	}
	if err != nil {
		t.Fatalf("setting the plan's subnet to %s: %v", subnet, err)
	}
}
