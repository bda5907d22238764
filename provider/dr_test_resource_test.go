package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	engdr "github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const drTestAddr = "haven_dr_test.drill"

// drRunEnv is a server whose DR runs check their instances every 50 ms,
// and a DR plan on moto of one machine (app-01 of vcsim, backed up and
// replicated) that probes port 22 and launches in the prod subnet, with a
// test network apart from it.
type drRunEnv struct {
	srv              *servertest.Server
	endpoint, planID string
	prod, test       string // subnet ids
	vc               *testparts.VCSimEnv
	vcenterID        string // vc, registered on the server
	// disk is app-01's disk as it was backed up, and so as it was
	// replicated and failed over.
	disk []byte
	// failProbe makes the machine's probe fail, after terminating its
	// instance, so the run fails at once rather than at its ready timeout.
	failProbe atomic.Bool
}

func newDRRunEnv(t *testing.T) *drRunEnv {
	t.Parallel()
	e := &drRunEnv{endpoint: testparts.Moto(t)}
	e.srv = servertest.StartWith(t, func(c *server.Config) {
		c.DRPoll = 50 * time.Millisecond
		c.DRDial = func(ctx context.Context, addr string) error {
			if !e.failProbe.Load() {
				return nil // moto's instances run nothing: the port answers
			}
			ip, _, _ := net.SplitHostPort(addr)
			if err := testparts.MotoTerminateAt(ctx, e.endpoint, ip, e.prod, e.test); err != nil {
				return err
			}
			return errors.New("connection refused (forced by the test)")
		}
	})
	ctx := t.Context()
	c := e.srv.Client
	e.vc = testparts.VCSim(t)
	center, _, disk := backUpVM(t, e.srv, e.vc)
	e.vcenterID, e.disk = center.ID, disk
	e.prod, _ = testparts.MotoSubnet(t, e.endpoint)
	e.test, _ = testparts.MotoSubnet(t, e.endpoint)
	out, err := testparts.MotoEC2Client(e.endpoint).DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{e.test}})
	if err != nil || len(out.Subnets) != 1 {
		t.Fatalf("moto: DescribeSubnets %s: %v", e.test, err)
	}
	target, err := c.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: api.AWSTargetSpec{
		Name: "dr", Region: testparts.MotoRegion, Credentials: api.AWSCredentialsAccessKey,
		AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey, Endpoint: e.endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: api.DRPlanSpec{Name: "site", TargetID: target.ID,
		ReplicationIntervalMinutes: 60,
		VMs:                        []api.DRPlanVM{{ProtectedVMID: "app-01", InstanceType: "t3.small", SubnetID: e.prod, ProbePort: 22}},
		TestNetwork:                &api.DRTestNetwork{VPCID: aws.ToString(out.Subnets[0].VpcId), SubnetID: e.test}}})
	if err != nil {
		t.Fatal(err)
	}
	e.planID = plan.ID
	j, err := c.ReplicateDRPlan(ctx, plan.ID)
	if err == nil {
		j, err = c.WaitJob(ctx, j.ID, 100*time.Millisecond)
	}
	if err != nil || j.State != api.JobSucceeded {
		t.Fatalf("replication of plan site: %v %+v", err, j)
	}
	return e
}

// runningInstance checks that the server holds run id as ready and that
// the run has one instance running in moto, in subnet; it returns that
// instance's id.
func (e *drRunEnv) runningInstance(id, subnet string) (string, error) {
	run, err := e.srv.Client.DRRun(context.Background(), id)
	if err != nil || run.State != api.DRRunReady {
		return "", fmt.Errorf("run %s on the server: %v %+v", id, err, run)
	}
	out, err := testparts.MotoEC2Client(e.endpoint).DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("tag:" + engdr.TagRun), Values: []string{id}}}})
	if err != nil {
		return "", err
	}
	var running []ec2types.Instance
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if in.State.Name == ec2types.InstanceStateNameRunning {
				running = append(running, in)
			}
		}
	}
	if len(running) != 1 {
		return "", fmt.Errorf("run %s has %d running instances in AWS, want 1", id, len(running))
	}
	if got := aws.ToString(running[0].SubnetId); got != subnet {
		return "", fmt.Errorf("run %s's instance runs in subnet %s, want %s", id, got, subnet)
	}
	return aws.ToString(running[0].InstanceId), nil
}

// checkRunning checks that the run of the resource at addr is ready, with
// the instance the state records running in subnet.
func (e *drRunEnv) checkRunning(addr, subnet string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[addr]
		if !ok {
			return fmt.Errorf("%s is not in the state", addr)
		}
		got, err := e.runningInstance(rs.Primary.ID, subnet)
		if err != nil {
			return err
		}
		if want := rs.Primary.Attributes["machines.0.instance_id"]; got != want {
			return fmt.Errorf("run %s's instance in AWS is %s, the state records %s", rs.Primary.ID, got, want)
		}
		return nil
	}
}

// checkCleanedUp is a CheckDestroy: every run the state held is cleaned on
// the server and has nothing left in AWS.
func (e *drRunEnv) checkCleanedUp(s *terraform.State) error {
	found := 0
	for addr, rs := range s.RootModule().Resources {
		if rs.Type != "haven_dr_test" && rs.Type != "haven_dr_failover" {
			continue
		}
		found++
		run, err := e.srv.Client.DRRun(context.Background(), rs.Primary.ID)
		if err != nil || run.State != api.DRRunCleaned {
			return fmt.Errorf("%s: run %s after destroy: %v %+v", addr, rs.Primary.ID, err, run)
		}
		left, err := engdr.Inventory(context.Background(), testparts.MotoEC2Client(e.endpoint), rs.Primary.ID)
		if err != nil || len(left) != 0 {
			return fmt.Errorf("%s: run %s left %+v in AWS after destroy (%v)", addr, rs.Primary.ID, left, err)
		}
	}
	if found == 0 {
		return errors.New("no DR run in the state before destroy: nothing was checked")
	}
	return nil
}

// TestAccDRTestResource: a drill whose machine dies while it is probed
// fails the apply with the reason and is tainted, having left nothing in
// AWS; the next apply replaces it with a drill that passes and keeps its
// instance running in the test subnet. The run imports by id, a new
// timeout updates in place, and destroy removes the instance.
func TestAccDRTestResource(t *testing.T) {
	e := newDRRunEnv(t)
	config := func(extra string) string {
		return providerConfig(e.srv) + fmt.Sprintf(`
resource "haven_dr_test" "drill" {
  plan_id      = %q
  keep_minutes = 30
%s
}
`, e.planID, extra)
	}
	sameID := statecheck.CompareValue(compare.ValuesSame())
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             e.checkCleanedUp,
		Steps: []resource.TestStep{
			{
				PreConfig:   func() { e.failProbe.Store(true) },
				Config:      config(""),
				ExpectError: errorLike("DR test", "failed", "everything it created was removed", "the next apply runs a new drill"),
			},
			{
				PreConfig: func() { e.failProbe.Store(false) },
				Config:    config(""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(drTestAddr, plancheck.ResourceActionDestroyBeforeCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(drTestAddr, at("id")),
					statecheck.ExpectKnownValue(drTestAddr, at("state"), knownvalue.StringExact(api.DRRunReady)),
					statecheck.ExpectKnownValue(drTestAddr, at("passed"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(drTestAddr, at("error"), knownvalue.Null()),
					statecheck.ExpectKnownValue(drTestAddr, at("rto_seconds"), knownvalue.NotNull()),
					statecheck.ExpectKnownValue(drTestAddr, at("machines"), knownvalue.ListSizeExact(1)),
					statecheck.ExpectKnownValue(drTestAddr, at("machines", 0, "name"), knownvalue.StringExact("app-01")),
					statecheck.ExpectKnownValue(drTestAddr, at("machines", 0, "instance_type"), knownvalue.StringExact("t3.small")),
					statecheck.ExpectKnownValue(drTestAddr, at("machines", 0, "instance_id"), knownvalue.StringRegexp(regexp.MustCompile(`^i-[0-9a-f]+$`))),
					statecheck.ExpectKnownValue(drTestAddr, at("leftovers"), knownvalue.ListSizeExact(0)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(e.checkRunning(drTestAddr, e.test), e.checkFailedDrill),
			},
			{
				ResourceName:      drTestAddr,
				ImportState:       true,
				ImportStateVerify: true,
				// The server does not record keep_minutes; the first plan
				// adopts the configuration's.
				ImportStateVerifyIgnore: []string{"keep_minutes"},
			},
			{
				Config: config(`  timeouts {
    delete = "10m"
  }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(drTestAddr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(drTestAddr, at("id"))},
				Check:             e.checkRunning(drTestAddr, e.test),
			},
		},
	})
}

// checkFailedDrill checks the plan's first drill, the one that failed: the
// server holds it as failed and cleaned, with nothing left in AWS.
func (e *drRunEnv) checkFailedDrill(s *terraform.State) error {
	runs, err := e.srv.Client.DRRuns(context.Background(), e.planID, api.DRRunTest)
	if err != nil || len(runs) != 2 {
		return fmt.Errorf("the plan's DR tests: %v %+v, want the failed one and the one that passed", err, runs)
	}
	failed := runs[1] // newest first
	if failed.ID == s.RootModule().Resources[drTestAddr].Primary.ID || failed.Passed == nil || *failed.Passed ||
		failed.State != api.DRRunCleaned || failed.Error == "" {
		return fmt.Errorf("the failed drill on the server: %+v", failed)
	}
	left, err := engdr.Inventory(context.Background(), testparts.MotoEC2Client(e.endpoint), failed.ID)
	if err != nil || len(left) != 0 {
		return fmt.Errorf("the failed drill left %+v in AWS (%v)", left, err)
	}
	return nil
}
