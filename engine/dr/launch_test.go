package dr_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// drLab is a moto region with a VPC, a production and a test subnet, and
// one replicated disk (its bytes in img).
type drLab struct {
	endpoint             string
	ec2                  *ec2.Client
	prodSubnet, drillNet string
	copy                 dr.DiskCopy
	img                  []byte
}

func newDRLab(t *testing.T) *drLab {
	t.Helper()
	ctx := context.Background()
	l := &drLab{endpoint: testparts.Moto(t)}
	l.ec2 = testparts.MotoEC2Client(l.endpoint)
	vpc, err := l.ec2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.20.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		cidr string
		id   *string
	}{{"10.20.1.0/24", &l.prodSubnet}, {"10.20.9.0/24", &l.drillNet}} {
		sub, err := l.ec2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String(s.cidr), AvailabilityZone: aws.String(testparts.MotoRegion + "a")})
		if err != nil {
			t.Fatal(err)
		}
		*s.id = aws.ToString(sub.Subnet.SubnetId)
	}
	env := repotest.New(t, repo.Options{})
	l.img = image(3<<20, 1<<20, 11)
	root := capture(t, env.Repo, l.img, 1<<20, "p1", "", format.ID{})
	l.copy, _, err = dr.Replicate(ctx, env.Repo, testparts.MotoEBSClient(l.endpoint), dr.ReplicateOptions{Disk: root, ClientToken: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// plan is three boot groups: db; app1 after db, app2 after db and app1;
// web after both apps.
func (l *drLab) plan(subnet string) []dr.Machine {
	m := func(name string, group int, deps ...string) dr.Machine {
		return dr.Machine{Name: name, Disks: []dr.DiskCopy{l.copy}, InstanceType: "t3.medium", SubnetID: subnet, Group: group, DependsOn: deps,
			Tags: map[string]string{"tier": name}}
	}
	web := m("web", 2, "app1", "app2")
	web.UserData = "#!/bin/sh\necho failed over > /etc/motd\n"
	web.InstanceType = "m5.large"
	web.BootMode = "uefi" // an EFI VM
	return []dr.Machine{web, m("app2", 1, "db", "app1"), m("db", 0), m("app1", 1, "db")}
}

func (l *drLab) instances(t *testing.T, run string) []ec2types.Instance {
	t.Helper()
	out, err := l.ec2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + dr.TagRun), Values: []string{run}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var all []ec2types.Instance
	for _, r := range out.Reservations {
		all = append(all, r.Instances...)
	}
	return all
}

func tag(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// TestLaunchInOrder: a plan of three boot groups launches group by group,
// each machine only after its dependencies are ready (and its port probe
// answers), with its instance type, subnet, tags and boot script, from an
// image whose root volume holds the replicated disk's bytes.
func TestLaunchInOrder(t *testing.T) {
	l := newDRLab(t)
	ctx := context.Background()
	run := "failover-" + t.Name()
	plan := l.plan(l.prodSubnet)
	plan[2].ProbePort = 5432 // db
	var mu sync.Mutex
	dials := 0
	res, err := dr.Launch(ctx, l.ec2, dr.LaunchOptions{Run: run, Machines: plan, Poll: 10 * time.Millisecond,
		Dial: func(_ context.Context, addr string) error {
			mu.Lock()
			defer mu.Unlock()
			if !strings.HasSuffix(addr, ":5432") || strings.HasPrefix(addr, ":") {
				return fmt.Errorf("probed %q", addr)
			}
			if dials++; dials < 3 {
				return errors.New("connection refused") // the database is still starting
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if dials != 3 {
		t.Errorf("db's port was probed %d times, want 3 (ready at the first answer)", dials)
	}
	at := map[string]map[string]time.Time{}
	for _, s := range res.Steps {
		if at[s.Machine] == nil {
			at[s.Machine] = map[string]time.Time{}
		}
		at[s.Machine][s.Step] = s.At
	}
	for _, m := range plan {
		for _, d := range m.DependsOn {
			if !at[m.Name]["launch"].After(at[d]["ready"]) {
				t.Errorf("%s launched at %v, before %s was ready at %v", m.Name, at[m.Name]["launch"], d, at[d]["ready"])
			}
		}
	}
	if res.RTO <= 0 || len(res.Machines) != 4 {
		t.Errorf("RTO %v, %d machines", time.Duration(res.RTO), len(res.Machines))
	}
	insts := l.instances(t, run)
	if len(insts) != 4 {
		t.Fatalf("%d instances run, want 4", len(insts))
	}
	for _, in := range insts {
		name := tag(in.Tags, dr.TagMachine)
		i := slices.IndexFunc(plan, func(m dr.Machine) bool { return m.Name == name })
		if i < 0 {
			t.Fatalf("instance %s is machine %q", aws.ToString(in.InstanceId), name)
		}
		m := plan[i]
		if string(in.InstanceType) != m.InstanceType || aws.ToString(in.SubnetId) != l.prodSubnet || tag(in.Tags, "tier") != name {
			t.Errorf("%s: type %s subnet %s tier %q, want %s %s %q", name, in.InstanceType, aws.ToString(in.SubnetId), tag(in.Tags, "tier"), m.InstanceType, l.prodSubnet, name)
		}
		ud, err := l.ec2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: in.InstanceId, Attribute: ec2types.InstanceAttributeNameUserData})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if ud.UserData != nil && ud.UserData.Value != nil {
			b, _ := base64.StdEncoding.DecodeString(aws.ToString(ud.UserData.Value))
			got = string(b)
		}
		if got != m.UserData {
			t.Errorf("%s: user data %q, want %q", name, got, m.UserData)
		}
		// The root volume holds the disk's bytes.
		var root string
		for _, b := range in.BlockDeviceMappings {
			if aws.ToString(b.DeviceName) == "/dev/sda1" && b.Ebs != nil {
				root = aws.ToString(b.Ebs.VolumeId)
			}
		}
		if root == "" {
			t.Fatalf("%s has no root volume", name)
		}
		first, err := testparts.MotoVolumeBlock(ctx, l.endpoint, root, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, l.img[:len(first)]) {
			t.Errorf("%s's root volume does not hold the replicated disk", name)
		}
	}
	// Images are registered with each machine's boot mode (AWS's default,
	// legacy BIOS, when it has none).
	for _, m := range res.Machines {
		im, err := l.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{m.ImageID}})
		if err != nil || len(im.Images) != 1 {
			t.Fatalf("%s's image %s: %v", m.Name, m.ImageID, err)
		}
		want := ec2types.BootModeValues("")
		if m.Name == "web" {
			want = ec2types.BootModeValuesUefi
		}
		if got := im.Images[0].BootMode; got != want {
			t.Errorf("%s's image boots %q, want %q", m.Name, got, want)
		}
	}
}

// TestLaunchContinuesAfterACrash: a failover cut short after its first
// instance launched, run again, continues: the machines it launched are
// found, not launched twice.
func TestLaunchContinuesAfterACrash(t *testing.T) {
	l := newDRLab(t)
	run := "failover-" + t.Name()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := dr.Launch(ctx, l.ec2, dr.LaunchOptions{Run: run, Machines: l.plan(l.prodSubnet), Poll: 10 * time.Millisecond,
		Created: func(r dr.Resource) {
			if r.Kind == "instance" {
				cancel() // the server dies as the first instance is launched
			}
		}})
	if err == nil {
		t.Fatal("the cut failover succeeded")
	}
	if n := len(l.instances(t, run)); n != 1 {
		t.Fatalf("%d instances after the crash, want 1", n)
	}
	res, err := dr.Launch(context.Background(), l.ec2, dr.LaunchOptions{Run: run, Machines: l.plan(l.prodSubnet), Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(l.instances(t, run)); n != 4 {
		t.Errorf("%d instances after the rerun, want 4", n)
	}
	reused := 0
	for _, m := range res.Machines {
		if m.Reused {
			reused++
			if m.Name != "db" {
				t.Errorf("%s was found from the first attempt; only db had been launched", m.Name)
			}
		}
	}
	if reused != 1 {
		t.Errorf("%d machines found from the first attempt, want 1", reused)
	}
}

// TestRelaunchAfterInstanceDied: a failover continued after one of its
// instances was terminated launches that machine afresh (EC2 answers the
// first launch's client token with the dead instance) and reuses the
// others.
func TestRelaunchAfterInstanceDied(t *testing.T) {
	l := newDRLab(t)
	run := "relaunch-" + t.Name()
	o := dr.LaunchOptions{Run: run, Machines: l.plan(l.prodSubnet), Poll: 10 * time.Millisecond}
	first, err := dr.Launch(context.Background(), l.ec2, o)
	if err != nil {
		t.Fatal(err)
	}
	dead := first.Machines[len(first.Machines)-1]
	if _, err := l.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{dead.InstanceID}}); err != nil {
		t.Fatal(err)
	}
	again, err := dr.Launch(context.Background(), l.ec2, o)
	if err != nil {
		t.Fatalf("continuing after %s's instance died: %v", dead.Name, err)
	}
	for _, m := range again.Machines {
		switch {
		case m.Name == dead.Name && (m.Reused || m.InstanceID == dead.InstanceID):
			t.Errorf("%s was not launched afresh: %+v", m.Name, m)
		case m.Name != dead.Name && !m.Reused:
			t.Errorf("%s was launched again, not reused", m.Name)
		}
	}
}

// TestDrillCleansUp: a drill in the test subnet, passed or failed part way
// (a machine EC2 refuses), leaves nothing after its cleanup; the DR copy it
// launched from is kept.
func TestDrillCleansUp(t *testing.T) {
	l := newDRLab(t)
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("failed %v", fail), func(t *testing.T) {
			ctx := context.Background()
			run := "drill-" + t.Name()
			plan := l.plan(l.drillNet)
			if fail {
				plan[0].SubnetID = "subnet-doesnotexist" // web, the last to launch
			}
			_, err := dr.Launch(ctx, l.ec2, dr.LaunchOptions{Run: run, Machines: plan, Poll: 10 * time.Millisecond})
			if fail != (err != nil) {
				t.Fatalf("drill: %v", err)
			}
			for _, in := range l.instances(t, run) {
				if aws.ToString(in.SubnetId) != l.drillNet {
					t.Errorf("drill instance %s in subnet %s, not the test subnet", aws.ToString(in.InstanceId), aws.ToString(in.SubnetId))
				}
			}
			before, err := dr.Inventory(ctx, l.ec2, run)
			if err != nil {
				t.Fatal(err)
			}
			if len(before) < 4 {
				t.Fatalf("the drill made only %v", before)
			}
			left, err := dr.Cleanup(ctx, l.ec2, run, time.Minute, 10*time.Millisecond)
			if err != nil || len(left) != 0 {
				t.Fatalf("cleanup: %v, left %v", err, left)
			}
			if again, err := dr.Inventory(ctx, l.ec2, run); err != nil || len(again) != 0 {
				t.Fatalf("after cleanup: %v %v", again, err)
			}
			if _, err := l.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{l.copy.SnapshotID}}); err != nil {
				t.Errorf("the DR copy is gone: %v", err)
			}
		})
	}
}

// TestCheckMachines: a plan with an unknown dependency, a dependency on a
// later group, or a loop is refused before anything is made, naming the
// field.
func TestCheckMachines(t *testing.T) {
	d := []dr.DiskCopy{{SnapshotID: "snap-1", VolumeGiB: 1}}
	m := func(name string, group int, deps ...string) dr.Machine {
		return dr.Machine{Name: name, Disks: d, InstanceType: "t3.micro", Group: group, DependsOn: deps}
	}
	for _, c := range []struct {
		plan  []dr.Machine
		field string
	}{
		{[]dr.Machine{m("a", 0, "ghost")}, "a.depends_on"},
		{[]dr.Machine{m("a", 0, "b"), m("b", 1)}, "a.depends_on"},
		{[]dr.Machine{m("a", 0, "b"), m("b", 0, "a")}, ".depends_on"},
		{[]dr.Machine{m("a", 0), m("a", 1)}, "machines[1].name"},
		{[]dr.Machine{{Name: "x", InstanceType: "t3.micro"}}, "x.disks"},
	} {
		err := dr.CheckMachines(c.plan)
		var fe *dr.FieldError
		if !errors.As(err, &fe) || !strings.Contains(fe.Field, c.field) {
			t.Errorf("%v: %v, want a field error on %s", c.plan, err, c.field)
		}
	}
}
