package dr

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"
)

// EC2 is the part of the EC2 client that failovers, drills and their
// cleanup use (*ec2.Client is one).
type EC2 interface {
	EC2Snapshots
	RegisterImage(ctx context.Context, in *ec2.RegisterImageInput, opts ...func(*ec2.Options)) (*ec2.RegisterImageOutput, error)
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, opts ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, opts ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error)
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, opts ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeInstanceStatus(ctx context.Context, in *ec2.DescribeInstanceStatusInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceStatusOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, opts ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, opts ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DeleteVolume(ctx context.Context, in *ec2.DeleteVolumeInput, opts ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
}

// Tags Haven puts on everything a failover or drill creates: the run and
// the machine it belongs to, which is how a rerun finds what an earlier
// attempt made and how a cleanup finds everything.
const (
	TagRun     = "haven:run"
	TagMachine = "haven:machine"
)

// Machine is one protected VM as a failover launches it.
type Machine struct {
	Name string
	// Disks are the VM's copies, the boot disk first.
	Disks            []DiskCopy
	InstanceType     string
	SubnetID         string
	PrivateIP        string
	SecurityGroupIDs []string
	Tags             map[string]string
	// UserData is the boot script, as text.
	UserData string
	// Group is the boot group: a group starts once every machine of the
	// groups before it is ready.
	Group int
	// DependsOn names machines (of this group or earlier ones) that must
	// be ready before this one is launched.
	DependsOn []string
	// ProbePort, when set, is a TCP port (22, 3389) that must accept a
	// connection on the instance's private address before it counts as
	// ready, beside EC2's instance and system status checks.
	ProbePort    int
	Architecture string // x86_64 (default) or arm64
	BootMode     string // legacy-bios (default) or uefi
}

// LaunchOptions describe one failover or drill.
type LaunchOptions struct {
	// Run identifies it: every resource is tagged with it, and client
	// tokens derive from it, so running it again continues it.
	Run      string
	Machines []Machine
	// Tags go on everything created, beside TagRun and TagMachine.
	Tags map[string]string
	// Ready bounds how long one machine may take from launch to passing
	// its checks (zero: 15 minutes).
	Ready time.Duration
	// Poll is the interval between status checks (zero: 5 seconds).
	Poll time.Duration
	// Dial probes a port (zero: a TCP dial with a 3-second timeout).
	Dial func(ctx context.Context, address string) error
	// Created is told of each resource as soon as it exists, so that a
	// crash leaves a record of it.
	Created func(Resource)
	// Started is when the run began: on a rerun after a crash, the first
	// attempt's start, so that the RTO covers the whole outage (zero:
	// now).
	Started time.Time
}

// Resource is something a run created in AWS.
type Resource struct {
	Kind    string `json:"kind"` // image, instance, volume
	ID      string `json:"id"`
	Machine string `json:"machine,omitempty"`
}

// Launched is one machine's outcome and timings.
type Launched struct {
	Name       string    `json:"name"`
	ImageID    string    `json:"image_id"`
	InstanceID string    `json:"instance_id"`
	PrivateIP  string    `json:"private_ip,omitempty"`
	Reused     bool      `json:"reused,omitempty"` // an earlier attempt launched it
	Launched   time.Time `json:"launched"`
	Running    time.Time `json:"running"`
	Ready      time.Time `json:"ready"`
}

// LaunchResult is a run's outcome: machines in the order they were
// launched, and how long the whole took (the achieved RTO, from the start
// to the last machine ready).
type LaunchResult struct {
	Machines []Launched   `json:"machines"`
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	RTO      Duration     `json:"rto"`
	Created  []Resource   `json:"created"`
	Steps    []LaunchStep `json:"steps"`
}

// LaunchStep is one timed step of a run.
type LaunchStep struct {
	Machine string    `json:"machine"`
	Step    string    `json:"step"` // image, launch, running, ready
	At      time.Time `json:"at"`
}

// Duration marshals as seconds.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(time.Duration(d).Seconds(), 'f', 3, 64)), nil
}

// FieldError is a plan a run refuses, naming the field.
type FieldError struct {
	Field, Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// CheckMachines checks a run's machines before anything is created: names
// unique, every dependency known and not in a later group, no cycle, and
// something to boot.
func CheckMachines(ms []Machine) error {
	byName := map[string]*Machine{}
	for i := range ms {
		m := &ms[i]
		if m.Name == "" {
			return &FieldError{fmt.Sprintf("machines[%d].name", i), "must not be empty"}
		}
		if byName[m.Name] != nil {
			return &FieldError{fmt.Sprintf("machines[%d].name", i), fmt.Sprintf("%q appears twice", m.Name)}
		}
		if len(m.Disks) == 0 {
			return &FieldError{m.Name + ".disks", "the VM has no copy in AWS yet"}
		}
		if m.InstanceType == "" {
			return &FieldError{m.Name + ".instance_type", "must be set"}
		}
		byName[m.Name] = m
	}
	for _, m := range ms {
		for _, d := range m.DependsOn {
			dep := byName[d]
			switch {
			case dep == nil:
				return &FieldError{m.Name + ".depends_on", fmt.Sprintf("%q is not a VM of the plan", d)}
			case dep.Group > m.Group:
				return &FieldError{m.Name + ".depends_on", fmt.Sprintf("%q boots in group %d, after this VM's group %d", d, dep.Group, m.Group)}
			}
		}
	}
	// A cycle: depth-first search over DependsOn.
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string, []string) error
	visit = func(n string, path []string) error {
		switch state[n] {
		case 1:
			return &FieldError{n + ".depends_on", "the dependencies loop: " + fmt.Sprint(append(path, n))}
		case 2:
			return nil
		}
		state[n] = 1
		for _, d := range byName[n].DependsOn {
			if err := visit(d, append(path, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		return nil
	}
	for _, m := range ms {
		if err := visit(m.Name, nil); err != nil {
			return err
		}
	}
	return nil
}

// Launch fails machines over into EC2: group by group, each machine once
// its dependencies are ready, from an image registered over its disks'
// snapshots, and waits until each passes its checks. Run again with the
// same Run (after a crash), it finds what the earlier attempt made by its
// tags and continues: no machine is launched twice.
func Launch(ctx context.Context, client EC2, o LaunchOptions) (LaunchResult, error) {
	res := LaunchResult{Started: o.Started}
	if res.Started.IsZero() {
		res.Started = time.Now()
	}
	if o.Run == "" {
		return res, &FieldError{"run", "must not be empty"}
	}
	if err := CheckMachines(o.Machines); err != nil {
		return res, err
	}
	if o.Ready <= 0 {
		o.Ready = 15 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.Dial == nil {
		o.Dial = dialTCP
	}
	l := &launcher{client: client, o: o, ready: map[string]chan struct{}{}, res: &res}
	for _, m := range o.Machines {
		l.ready[m.Name] = make(chan struct{})
	}
	groups := map[int][]Machine{}
	var order []int
	for _, m := range o.Machines {
		if groups[m.Group] == nil {
			order = append(order, m.Group)
		}
		groups[m.Group] = append(groups[m.Group], m)
	}
	sort.Ints(order)
	for _, g := range order {
		eg, gctx := errgroup.WithContext(ctx)
		for _, m := range groups[g] {
			eg.Go(func() error { return l.machine(gctx, m) })
		}
		if err := eg.Wait(); err != nil {
			return res, err
		}
	}
	res.Finished = time.Now()
	res.RTO = Duration(res.Finished.Sub(res.Started))
	return res, nil
}

type launcher struct {
	client EC2
	o      LaunchOptions
	ready  map[string]chan struct{} // closed when the machine is ready
	mu     sync.Mutex
	res    *LaunchResult
}

func (l *launcher) step(m, step string) time.Time {
	now := time.Now()
	l.mu.Lock()
	l.res.Steps = append(l.res.Steps, LaunchStep{Machine: m, Step: step, At: now})
	l.mu.Unlock()
	return now
}

func (l *launcher) created(r Resource) {
	l.mu.Lock()
	l.res.Created = append(l.res.Created, r)
	l.mu.Unlock()
	if l.o.Created != nil {
		l.o.Created(r)
	}
}

// machine waits for m's dependencies, then launches it (or finds the
// instance an earlier attempt launched) and waits until it is ready.
func (l *launcher) machine(ctx context.Context, m Machine) error {
	for _, d := range m.DependsOn {
		select {
		case <-l.ready[d]:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	out := Launched{Name: m.Name}
	// An instance an earlier attempt launched is reused as it is: its
	// image may have been deregistered since (a run drops its images
	// once its machines are up), and registering another would only
	// leave an image behind.
	inst, reused, err := l.findInstance(ctx, m)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	if reused {
		out.ImageID = aws.ToString(inst.ImageId)
	} else {
		image, err := l.image(ctx, m)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		out.ImageID = image
		l.step(m.Name, "image")
		if inst, err = l.runInstance(ctx, m, image); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	out.InstanceID, out.Reused = aws.ToString(inst.InstanceId), reused
	if reused && inst.LaunchTime != nil {
		// An earlier attempt launched it: its launch step is that
		// attempt's, and AWS knows when it was.
		out.Launched = aws.ToTime(inst.LaunchTime)
	} else {
		out.Launched = l.step(m.Name, "launch")
	}
	l.mu.Lock()
	l.res.Machines = append(l.res.Machines, out)
	i := len(l.res.Machines) - 1
	l.mu.Unlock()
	running, ip, err := l.waitReady(ctx, m, out.InstanceID)
	if err != nil {
		return fmt.Errorf("%s (%s): %w", m.Name, out.InstanceID, err)
	}
	ready := l.step(m.Name, "ready")
	l.mu.Lock()
	l.res.Machines[i].Running, l.res.Machines[i].Ready, l.res.Machines[i].PrivateIP = running, ready, ip
	l.mu.Unlock()
	close(l.ready[m.Name])
	return nil
}

func (l *launcher) tags(m Machine, kind ec2types.ResourceType) ec2types.TagSpecification {
	spec := ec2types.TagSpecification{ResourceType: kind}
	add := func(k, v string) {
		spec.Tags = append(spec.Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	for _, src := range []map[string]string{l.o.Tags, m.Tags} {
		keys := make([]string, 0, len(src))
		for k := range src {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			add(k, src[k])
		}
	}
	add("Name", m.Name)
	add(TagRun, l.o.Run)
	add(TagMachine, m.Name)
	return spec
}

func (l *launcher) filters(m Machine) []ec2types.Filter {
	return []ec2types.Filter{
		{Name: aws.String("tag:" + TagRun), Values: []string{l.o.Run}},
		{Name: aws.String("tag:" + TagMachine), Values: []string{m.Name}},
	}
}

// image registers m's image over its snapshots, or finds the one an
// earlier attempt registered.
func (l *launcher) image(ctx context.Context, m Machine) (string, error) {
	found, err := l.client.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: l.filters(m)})
	if err != nil {
		return "", fmt.Errorf("looking for its image: %w", err)
	}
	for _, im := range found.Images {
		if im.State != ec2types.ImageStateDeregistered {
			return aws.ToString(im.ImageId), nil
		}
	}
	in := &ec2.RegisterImageInput{
		Name:               aws.String(imageName(l.o.Run, m.Name)),
		Description:        aws.String("Haven failover of " + m.Name),
		RootDeviceName:     aws.String("/dev/sda1"),
		VirtualizationType: aws.String("hvm"),
		EnaSupport:         aws.Bool(true),
		Architecture:       ec2types.ArchitectureValuesX8664,
		TagSpecifications:  []ec2types.TagSpecification{l.tags(m, ec2types.ResourceTypeImage)},
	}
	if m.Architecture != "" {
		in.Architecture = ec2types.ArchitectureValues(m.Architecture)
	}
	if m.BootMode != "" {
		in.BootMode = ec2types.BootModeValues(m.BootMode)
	}
	for i, d := range m.Disks {
		in.BlockDeviceMappings = append(in.BlockDeviceMappings, ec2types.BlockDeviceMapping{
			DeviceName: aws.String(deviceName(i)),
			Ebs: &ec2types.EbsBlockDevice{
				SnapshotId:          aws.String(d.SnapshotID),
				VolumeSize:          aws.Int32(int32(d.VolumeGiB)),
				VolumeType:          ec2types.VolumeTypeGp3,
				DeleteOnTermination: aws.Bool(true),
			},
		})
	}
	out, err := l.client.RegisterImage(ctx, in)
	if err != nil {
		return "", fmt.Errorf("registering its image: %w", err)
	}
	id := aws.ToString(out.ImageId)
	l.created(Resource{Kind: "image", ID: id, Machine: m.Name})
	return id, nil
}

// imageName is unique per run and machine (AWS refuses a second image of
// the same name in a region, which also guards against twins).
func imageName(run, machine string) string {
	sum := sha256.Sum256([]byte(run + "\x00" + machine))
	return "haven-" + hex.EncodeToString(sum[:12])
}

// deviceName is the i-th disk's device: /dev/sda1 boots, then /dev/sdb on.
func deviceName(i int) string {
	if i == 0 {
		return "/dev/sda1"
	}
	return "/dev/sd" + string(rune('a'+i))
}

// findInstance finds the instance an earlier attempt launched for m, by
// its tags.
func (l *launcher) findInstance(ctx context.Context, m Machine) (ec2types.Instance, bool, error) {
	found, err := l.client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: append(l.filters(m),
		ec2types.Filter{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}})})
	if err != nil {
		return ec2types.Instance{}, false, fmt.Errorf("looking for its instance: %w", err)
	}
	for _, r := range found.Reservations {
		for _, in := range r.Instances {
			return in, true, nil
		}
	}
	return ec2types.Instance{}, false, nil
}

// runInstance launches m from image, under a client token of the run and
// machine (which EC2 honours for a day: a launch whose answer was lost is
// not made twice).
func (l *launcher) runInstance(ctx context.Context, m Machine, image string) (ec2types.Instance, error) {
	in := &ec2.RunInstancesInput{
		ImageId:           aws.String(image),
		InstanceType:      ec2types.InstanceType(m.InstanceType),
		MinCount:          aws.Int32(1),
		MaxCount:          aws.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{l.tags(m, ec2types.ResourceTypeInstance), l.tags(m, ec2types.ResourceTypeVolume)},
	}
	if m.SubnetID != "" {
		in.SubnetId = aws.String(m.SubnetID)
	}
	if m.PrivateIP != "" {
		in.PrivateIpAddress = aws.String(m.PrivateIP)
	}
	if len(m.SecurityGroupIDs) > 0 {
		in.SecurityGroupIds = m.SecurityGroupIDs
	}
	if m.UserData != "" {
		in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(m.UserData)))
	}
	// EC2 answers a token it has seen with the instance it launched then,
	// even once that instance is terminated (a failover continued after
	// its instance died): then the next token launches afresh.
	for attempt := range maxLaunchTokens {
		in.ClientToken = aws.String(launchToken(l.o.Run, m.Name, attempt))
		out, err := l.client.RunInstances(ctx, in)
		if err != nil {
			return ec2types.Instance{}, fmt.Errorf("launching: %w", err)
		}
		if len(out.Instances) != 1 {
			return ec2types.Instance{}, fmt.Errorf("launching: %d instances in the answer", len(out.Instances))
		}
		inst := out.Instances[0]
		// The answer to a repeated token repeats the first answer's state
		// (pending): ask for the instance as it is now.
		now, err := l.client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(inst.InstanceId)}})
		if err != nil {
			return ec2types.Instance{}, fmt.Errorf("describing the instance launched: %w", err)
		}
		if dead(now) {
			continue
		}
		l.created(Resource{Kind: "instance", ID: aws.ToString(inst.InstanceId), Machine: m.Name})
		return inst, nil
	}
	return ec2types.Instance{}, fmt.Errorf("launching: the instances of the last %d launch tokens are terminated", maxLaunchTokens)
}

// dead says whether the instance described is terminated or going.
func dead(out *ec2.DescribeInstancesOutput) bool {
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if in.State != nil && (in.State.Name == ec2types.InstanceStateNameTerminated || in.State.Name == ec2types.InstanceStateNameShuttingDown) {
				return true
			}
		}
	}
	return false
}

// maxLaunchTokens bounds the fresh tokens one launch tries.
const maxLaunchTokens = 8

// launchToken is the client token of a machine's launch in a run: the
// same on every attempt (attempt 0), so that a launch whose answer was
// lost is not made twice.
func launchToken(run, machine string, attempt int) string {
	key := run + "\x00" + machine
	if attempt > 0 {
		key += "\x00" + strconv.Itoa(attempt)
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// ErrNotReady means a machine did not pass its checks in time.
var ErrNotReady = errors.New("not ready in time")

// waitReady waits until the instance runs, passes EC2's instance and
// system status checks, and (when asked) accepts a connection on its
// probe port.
func (l *launcher) waitReady(ctx context.Context, m Machine, id string) (running time.Time, ip string, err error) {
	deadline := time.Now().Add(l.o.Ready)
	var why string
	for {
		why, ip, err = l.check(ctx, m, id, &running)
		if err != nil {
			return running, ip, err
		}
		if why == "" {
			return running, ip, nil
		}
		if time.Now().After(deadline) {
			return running, ip, fmt.Errorf("%w: %s", ErrNotReady, why)
		}
		select {
		case <-ctx.Done():
			return running, ip, ctx.Err()
		case <-time.After(l.o.Poll):
		}
	}
}

// check says why the instance is not ready yet ("" when it is).
func (l *launcher) check(ctx context.Context, m Machine, id string, running *time.Time) (why, ip string, err error) {
	st, err := l.client.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{InstanceIds: []string{id}, IncludeAllInstances: aws.Bool(true)})
	if err != nil {
		return "", "", fmt.Errorf("instance status: %w", err)
	}
	if len(st.InstanceStatuses) != 1 {
		return "no status yet", "", nil
	}
	s := st.InstanceStatuses[0]
	state := ec2types.InstanceStateNamePending
	if s.InstanceState != nil {
		state = s.InstanceState.Name
	}
	switch state {
	case ec2types.InstanceStateNameRunning:
	case ec2types.InstanceStateNamePending:
		return "pending", "", nil
	default:
		return "", "", fmt.Errorf("the instance is %s", state)
	}
	if running.IsZero() {
		*running = l.step(m.Name, "running")
	}
	if s.InstanceStatus == nil || s.InstanceStatus.Status != ec2types.SummaryStatusOk {
		return "instance status check not ok yet", "", nil
	}
	if s.SystemStatus == nil || s.SystemStatus.Status != ec2types.SummaryStatusOk {
		return "system status check not ok yet", "", nil
	}
	desc, err := l.client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return "", "", fmt.Errorf("describing the instance: %w", err)
	}
	for _, r := range desc.Reservations {
		for _, in := range r.Instances {
			ip = aws.ToString(in.PrivateIpAddress)
		}
	}
	if m.ProbePort == 0 {
		return "", ip, nil
	}
	if ip == "" {
		return "no private address yet", "", nil
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(m.ProbePort))
	if err := l.o.Dial(ctx, addr); err != nil {
		return fmt.Sprintf("port %d does not answer: %v", m.ProbePort, err), ip, nil
	}
	return "", ip, nil
}

func dialTCP(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
