package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestDRPlanValidation: malformed plans are a 400 naming the field (the
// index of the VM), references that do not exist a 422; a valid plan with
// boot groups and dependencies is stored with its references as ids, and
// updated in place with its version.
func TestDRPlanValidation(t *testing.T) {
	endpoint := testparts.Moto(t)
	f := newVMFixture(t, nil)
	ctx := context.Background()
	c := f.srv.Client
	db1, app1 := f.protect("db-01", nil), f.protect("app-01", nil)
	target := drTarget(t, c, endpoint, "dr-validation")
	valid := func() api.DRPlanSpec {
		return api.DRPlanSpec{Name: "two-tier", TargetID: target.Name, ReplicationIntervalMinutes: 15,
			VMs: []api.DRPlanVM{
				{ProtectedVMID: db1.ID, InstanceType: "m6i.large", BootGroup: 0, ProbePort: 22, Tags: map[string]string{"tier": "db"}},
				{ProtectedVMID: "app-01", Name: "app", BootGroup: 1, DependsOn: []string{"db-01"}, UserData: "#!/bin/sh\necho up\n"},
			},
			TestNetwork: &api.DRTestNetwork{VPCID: "vpc-0a1b2c3d4e5f60718", SubnetID: "subnet-0a1b2c3d4e5f60718"}}
	}
	for _, tc := range []struct {
		name   string
		mod    func(*api.DRPlanSpec)
		status int
		field  string
	}{
		{"no name", func(p *api.DRPlanSpec) { p.Name = "" }, 400, "name"},
		{"short interval", func(p *api.DRPlanSpec) { p.ReplicationIntervalMinutes = 4 }, 400, "replication_interval_minutes"},
		{"no VMs", func(p *api.DRPlanSpec) { p.VMs = nil }, 400, "vms"},
		{"no target", func(p *api.DRPlanSpec) { p.TargetID = "" }, 400, "target_id"},
		{"bad instance type", func(p *api.DRPlanSpec) { p.VMs[1].InstanceType = "huge" }, 400, "vms[1].instance_type"},
		{"private IP without subnet", func(p *api.DRPlanSpec) { p.VMs[0].PrivateIP = "10.0.0.5" }, 400, "vms[0].subnet_id"},
		{"public IP", func(p *api.DRPlanSpec) { p.VMs[0].PrivateIP, p.VMs[0].SubnetID = "8.8.8.8", "subnet-0a1b2c3d" }, 400, "vms[0].private_ip"},
		{"bad group id", func(p *api.DRPlanSpec) { p.VMs[1].SecurityGroupIDs = []string{"default"} }, 400, "vms[1].security_group_ids[0]"},
		{"reserved tag", func(p *api.DRPlanSpec) { p.VMs[0].Tags = map[string]string{"haven:run": "x"} }, 400, "vms[0].tags"},
		{"negative boot group", func(p *api.DRPlanSpec) { p.VMs[0].BootGroup = -1 }, 400, "vms[0].boot_group"},
		{"bad probe port", func(p *api.DRPlanSpec) { p.VMs[0].ProbePort = 70000 }, 400, "vms[0].probe_port"},
		{"unknown dependency", func(p *api.DRPlanSpec) { p.VMs[1].DependsOn = []string{"cache"} }, 400, "vms[1].depends_on"},
		{"dependency in a later group", func(p *api.DRPlanSpec) { p.VMs[0].DependsOn = []string{"app"} }, 400, "vms[0].depends_on"},
		{"cycle", func(p *api.DRPlanSpec) { p.VMs[1].BootGroup = 0; p.VMs[0].DependsOn = []string{"app"} }, 400, "vms[0].depends_on"},
		{"duplicate names", func(p *api.DRPlanSpec) { p.VMs[1].Name = "db-01" }, 400, "vms[1].name"},
		{"same VM twice", func(p *api.DRPlanSpec) { p.VMs[1].ProtectedVMID = "db-01"; p.VMs[1].DependsOn = nil }, 400, "vms[1].protected_vm_id"},
		{"bad test VPC", func(p *api.DRPlanSpec) { p.TestNetwork.VPCID = "default" }, 400, "test_network.vpc_id"},
		{"unknown target", func(p *api.DRPlanSpec) { p.TargetID = "nowhere" }, 422, "target_id"},
		{"unknown VM", func(p *api.DRPlanSpec) { p.VMs[1].ProtectedVMID = "web-99" }, 422, "vms[1].protected_vm_id"},
	} {
		spec := valid()
		tc.mod(&spec)
		_, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: spec})
		var e *api.Error
		if !errors.As(err, &e) || e.Status != tc.status || e.Field != tc.field {
			t.Errorf("%s: got %v (field %q), want %d on %s", tc.name, err, fieldOf(e), tc.status, tc.field)
		}
	}

	plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: valid()})
	if err != nil {
		t.Fatal(err)
	}
	if plan.TargetID != target.ID || plan.VMs[1].ProtectedVMID != app1.ID || plan.VMs[0].Name != "db-01" || plan.VMs[1].InstanceType != api.InstanceTypeAuto ||
		len(plan.Status.VMs) != 2 || plan.Status.VMs[0].InstanceType != "m6i.large" || plan.Status.LastReplicationJob != nil {
		t.Fatalf("stored plan: %+v", plan)
	}
	spec := plan.DRPlanSpec
	spec.ReplicationIntervalMinutes = 30
	updated, err := c.DRPlans().Update(ctx, plan.ID, plan.Version, api.DRPlanRequest{DRPlanSpec: spec})
	if err != nil || updated.ReplicationIntervalMinutes != 30 || updated.Version != plan.Version+1 {
		t.Fatalf("update: %+v %v", updated, err)
	}
	if _, err := c.DRPlans().Update(ctx, plan.ID, plan.Version, api.DRPlanRequest{DRPlanSpec: spec}); !isStatus(err, http.StatusConflict, "") {
		t.Fatalf("a stale update: %v", err)
	}
	if _, err := c.ReplicateDRPlan(ctx, "no-such-plan"); !isStatus(err, http.StatusNotFound, "") {
		t.Fatalf("replicating an unknown plan: %v", err)
	}
	list, err := c.DRPlans().List(ctx, "", 0)
	if err != nil || len(list.Items) != 1 || !strings.EqualFold(list.Items[0].Name, "two-tier") {
		t.Fatalf("list: %+v %v", list, err)
	}
}

func fieldOf(e *api.Error) string {
	if e == nil {
		return ""
	}
	return e.Field
}
