package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestDRFailback fails a failover of db-01 back to the vCenter sim through
// `haven dr-runs failback`: refused flags named (a missing --vcenter, an
// unknown one, --power-on without --final, --name of no machine), a first
// pass with --wait that makes VM db-01-failback, powered off, its disk
// byte-equal to db-01's, then, after a guest write in AWS, a --final
// --power-on pass that reads only that block, powers the VM on and leaves
// the run failed_back; a further pass is refused.
func TestDRFailback(t *testing.T) {
	ctx := context.Background()
	d := newDRSetup(t, func(c *server.Config) {
		c.DRPoll = 50 * time.Millisecond
		// No instance on moto answers a probe: the port "answers".
		c.DRDial = func(context.Context, string) error { return nil }
	})
	c := d.srv.Client
	d.site(t)
	vc, err := c.VCenters().Get(ctx, "sim")
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := haven(t, "dr-plans", "failover", "site", "--confirm", "--wait", "-o", "json")
	var run api.DRRun
	if code != 0 || json.Unmarshal([]byte(out), &run) != nil || run.State != api.DRRunReady || len(run.Machines) != 1 || run.Machines[0].InstanceID == "" {
		t.Fatalf("dr-plans failover site --confirm --wait: exit %d, printed %q", code, out)
	}
	getRun := func() *api.DRRun {
		t.Helper()
		r, err := c.DRRun(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// vm is the failback's VM as the vCenter lists it.
	vm := func() api.VM {
		t.Helper()
		vms, err := c.VMs(ctx, vc.ID, api.VMFilter{Name: "db-01-failback"})
		if err != nil || len(vms) != 1 {
			t.Fatalf("VM db-01-failback on the vCenter: %+v %v", vms, err)
		}
		return vms[0]
	}

	// Refusals, each naming the flag; none of them starts a pass.
	for _, tc := range []struct {
		args     []string
		code     int
		contains []string
	}{
		{[]string{"--final"}, 2, []string{"--vcenter is required"}},
		{[]string{"--vcenter", "nowhere"}, 1, []string{`vCenter "nowhere" does not exist`, "(see --vcenter)"}},
		{[]string{"--vcenter", "sim", "--power-on"}, 1, []string{"power_on: needs final", "(see --power-on)"}},
		{[]string{"--vcenter", "sim", "--name", "web=web-back"}, 1, []string{"not a machine of the failover", "(see --name)"}},
		{[]string{"--vcenter", "sim", "--network-map", "VM Network"}, 2, []string{"--network-map", "SRC=DST"}},
	} {
		args := append([]string{"dr-runs", "failback", run.ID}, tc.args...)
		code, _, errOut := haven(t, args...)
		for _, want := range tc.contains {
			if code != tc.code || !strings.Contains(errOut, want) {
				t.Fatalf("%s: exit %d (want %d), stderr %q (want %q)", strings.Join(args, " "), code, tc.code, errOut, want)
			}
		}
	}
	if r := getRun(); r.Failback != nil {
		t.Fatalf("a refused failback started one: %+v", r.Failback)
	}
	code, out, _ = haven(t, "__complete", "dr-runs", "failback", "")
	if code != 0 || !strings.Contains(out, run.ID+"\tfailover of site ready") {
		t.Errorf("completing dr-runs failback: exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "__complete", "dr-runs", "failback", run.ID, "--vcenter", "")
	if code != 0 || !strings.Contains(out, "sim\tvCenter "+vc.ID) {
		t.Errorf("completing dr-runs failback --vcenter: exit %d, printed %q", code, out)
	}

	// The first pass makes the VM, powered off, while the instance runs.
	code, out, _ = haven(t, "dr-runs", "failback", run.ID, "--vcenter", "sim", "--wait")
	if code != 0 || !strings.Contains(out, "DR failover run "+run.ID+" of plan site ready: failback synced after 1 pass (job ") ||
		!regexp.MustCompile(`(?m)^db-01\s+db-01-failback\s+[1-9]\d*\s+\S+ \S+\s+no\s*$`).MatchString(out) ||
		!strings.Contains(out, "haven dr-runs failback "+run.ID+" --vcenter sim --final") {
		t.Fatalf("dr-runs failback %s --vcenter sim --wait: exit %d, printed %q", run.ID, code, out)
	}
	r := getRun()
	if fb := r.Failback; r.State != api.DRRunReady || fb == nil || fb.State != api.DRFailbackSynced || fb.Passes != 1 || len(fb.VMs) != 1 ||
		!strings.Contains(out, "(job "+fb.JobID+" succeeded)") {
		t.Fatalf("the run after the first pass: %+v %+v", r, r.Failback)
	}
	want := d.sim.DiskBytes(t, "db-01", 0)
	if back := d.sim.DiskBytes(t, "db-01-failback", 0); !bytes.Equal(back, want) {
		t.Fatalf("db-01-failback's disk differs from db-01's (%d bytes, want %d)", len(back), len(want))
	}
	if v := vm(); v.PowerState == "poweredOn" {
		t.Fatalf("db-01-failback is %s after the first pass, want off", v.PowerState)
	}

	// A guest write in AWS: the final pass copies that block alone.
	inst, err := testparts.MotoEC2Client(d.endpoint).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{run.Machines[0].InstanceID}})
	if err != nil || len(inst.Reservations) != 1 || len(inst.Reservations[0].Instances) != 1 {
		t.Fatalf("the failover's instance: %v", err)
	}
	in := inst.Reservations[0].Instances[0]
	var rootVolume string
	for _, m := range in.BlockDeviceMappings {
		if aws.ToString(m.DeviceName) == aws.ToString(in.RootDeviceName) {
			rootVolume = aws.ToString(m.Ebs.VolumeId)
		}
	}
	block := bytes.Repeat([]byte("written in AWS. "), testparts.MotoBlockSize/16)
	if err := testparts.MotoWriteVolumeBlock(ctx, d.endpoint, rootVolume, 3, block); err != nil {
		t.Fatal(err)
	}
	copy(want[3*testparts.MotoBlockSize:], block)

	code, out, _ = haven(t, "dr-runs", "failback", run.ID, "--vcenter", "sim", "--final", "--power-on", "--wait")
	if code != 0 || !strings.Contains(out, "DR failover run "+run.ID+" of plan site failed_back: failback completed after 2 passes (job ") ||
		!regexp.MustCompile(`(?m)^db-01\s+db-01-failback\s+1\s+\S+ \S+\s+yes\s*$`).MatchString(out) ||
		!strings.Contains(out, "haven dr-runs cleanup "+run.ID+" --confirm") {
		t.Fatalf("dr-runs failback %s --vcenter sim --final --power-on --wait: exit %d, printed %q", run.ID, code, out)
	}
	if back := d.sim.DiskBytes(t, "db-01-failback", 0); !bytes.Equal(back, want) {
		t.Fatal("db-01-failback's disk after the final pass differs from the instance's volume")
	}
	if v := vm(); v.PowerState != "poweredOn" {
		t.Fatalf("db-01-failback is %s after the final pass, want poweredOn", v.PowerState)
	}
	code, out, _ = haven(t, "dr-runs", "show", run.ID, "-o", "json")
	var shown api.DRRun
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.State != api.DRRunFailedBack || shown.Failback == nil ||
		shown.Failback.State != api.DRFailbackCompleted || shown.Failback.VMs[0].VMName != "db-01-failback" || !shown.Failback.VMs[0].PoweredOn {
		t.Fatalf("dr-runs show %s -o json after the final pass: exit %d, printed %q", run.ID, code, out)
	}
	code, _, errOut := haven(t, "dr-runs", "failback", run.ID, "--vcenter", vc.ID)
	if code != 1 || !strings.Contains(errOut, "was failed back already") {
		t.Fatalf("a failback after the final pass: exit %d, stderr %q", code, errOut)
	}
}
