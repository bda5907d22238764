package api

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
)

// InstanceTypeAuto asks the server to pick a VM's instance type from its
// CPUs and memory (recorded with the reason in the plan's status).
const InstanceTypeAuto = "auto"

// MinReplicationIntervalMinutes is the shortest replication interval.
const MinReplicationIntervalMinutes = 5

// DRPlanVM is one protected VM of a DR plan and how it is launched in
// AWS.
type DRPlanVM struct {
	// ProtectedVMID is the protected VM (id, or its VM name when that is
	// unique); the server stores the id.
	ProtectedVMID string `json:"protected_vm_id,omitempty"`
	// ProtectionRuleID, instead of ProtectedVMID, names a VM protection
	// rule (id or name): the entry stands for every VM the rule protects
	// at the time, each launched with the entry's settings under its VM
	// name. A dependency on the entry is one on all of them.
	ProtectionRuleID string `json:"protection_rule_id,omitempty"`
	// Name is the machine's name in the plan (unique within it); it
	// defaults to the protected VM's name (a rule entry's, to the rule's).
	Name string `json:"name,omitempty"`
	// InstanceType is an EC2 instance type, or "auto" (the default).
	InstanceType     string            `json:"instance_type,omitempty"`
	SubnetID         string            `json:"subnet_id,omitempty"`
	PrivateIP        string            `json:"private_ip,omitempty"`
	SecurityGroupIDs []string          `json:"security_group_ids,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	// BootGroup orders the failover: a group starts once every machine
	// of the groups before it is ready.
	BootGroup int `json:"boot_group"`
	// DependsOn names machines of the plan (of this group or an earlier
	// one) that must be ready before this one launches.
	DependsOn []string `json:"depends_on,omitempty"`
	// UserData is the boot script, as text.
	UserData string `json:"user_data,omitempty"`
	// ProbePort, when not 0, is a TCP port that must accept connections
	// before the machine counts as ready (22, 3389).
	ProbePort int `json:"probe_port,omitempty"`
}

// DRTestNetwork is where DR tests (drills) launch, apart from production.
type DRTestNetwork struct {
	VPCID            string   `json:"vpc_id"`
	SubnetID         string   `json:"subnet_id"`
	SecurityGroupIDs []string `json:"security_group_ids,omitempty"`
}

// DRPlanSpec is the writable part of a DR plan.
type DRPlanSpec struct {
	Name string `json:"name"`
	// TargetID is the AWS target (id or name); the server stores the id.
	TargetID string `json:"target_id"`
	// ReplicationIntervalMinutes is how often copies are due: a VM whose
	// copy is older than this, and that has a newer point, is replicated.
	ReplicationIntervalMinutes int            `json:"replication_interval_minutes"`
	VMs                        []DRPlanVM     `json:"vms"`
	TestNetwork                *DRTestNetwork `json:"test_network,omitempty"`
	Group                      string         `json:"group,omitempty"`
}

// DRPlanRequest is the body of create and update calls.
type DRPlanRequest struct {
	DRPlanSpec
	Version *int64 `json:"version,omitempty"`
}

// DRPlan is a stored DR plan with its status.
type DRPlan struct {
	Meta
	DRPlanSpec
	Status DRPlanStatus `json:"status"`
}

// DRPlanStatus is what the server knows of a plan's copies and jobs.
type DRPlanStatus struct {
	VMs []DRVMStatus `json:"vms"`
	// LastReplicationJob is the plan's newest replication job, if any.
	LastReplicationJob *DRJobRef `json:"last_replication_job,omitempty"`
	// LastFailover and LastTest are the plan's newest runs of each kind.
	LastFailover *DRRunRef `json:"last_failover,omitempty"`
	LastTest     *DRRunRef `json:"last_test,omitempty"`
}

// DRJobRef names a job and how it stands.
type DRJobRef struct {
	ID         string     `json:"id"`
	State      string     `json:"state"`
	Error      string     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// DRVMStatus is one VM's last copy in AWS.
type DRVMStatus struct {
	Name          string `json:"name"`
	ProtectedVMID string `json:"protected_vm_id"`
	// PointID is the recovery point the last copy holds ("" before the
	// first copy), taken at PointTime.
	PointID   string       `json:"point_id,omitempty"`
	PointTime *time.Time   `json:"point_time,omitempty"`
	CopiedAt  *time.Time   `json:"copied_at,omitempty"`
	Disks     []DRDiskCopy `json:"disks,omitempty"`
	// AgeSeconds is the copy's age (since it was copied).
	AgeSeconds *int64 `json:"age_seconds,omitempty"`
	// LagSeconds is the replication lag: seconds since the copy's point
	// was taken, or since the newest point when there is no copy.
	LagSeconds *int64 `json:"lag_seconds,omitempty"`
	// NewestPointID is the VM's newest recovery point.
	NewestPointID string `json:"newest_point_id,omitempty"`
	// Late: the copy is older than the replication interval while a newer
	// point exists (or there is no copy of an existing point).
	Late bool `json:"late"`
	// InstanceType is the type a failover launches; with "auto" it is
	// the pick (made at the last replication, from the point's CPUs and
	// memory), and InstanceTypeReason says why.
	InstanceType       string `json:"instance_type,omitempty"`
	InstanceTypeReason string `json:"instance_type_reason,omitempty"`
}

// DRDiskCopy is one disk's EBS snapshot.
type DRDiskCopy struct {
	DiskKey    int32  `json:"disk_key"`
	SnapshotID string `json:"snapshot_id"`
	VolumeGiB  int64  `json:"volume_gib"`
}

var (
	// An EC2 instance type: family (letters, digits, dashes), a dot, a
	// size (m6i.large, u-6tb1.metal, t3.micro).
	instanceTypePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)
)

// Validate reports the first malformed field of a DR plan. Names that
// default to the protected VM's name are checked later (ValidateGraph),
// once the server has filled them.
func (p *DRPlanSpec) Validate() *Error {
	if err := validateName("name", p.Name); err != nil {
		return err
	}
	if p.TargetID == "" {
		return FieldError("target_id", "is required: an AWS target's id or name")
	}
	if p.ReplicationIntervalMinutes < MinReplicationIntervalMinutes {
		return FieldError("replication_interval_minutes", "must be at least %d, got %d", MinReplicationIntervalMinutes, p.ReplicationIntervalMinutes)
	}
	if p.ReplicationIntervalMinutes > 7*24*60 {
		return FieldError("replication_interval_minutes", "must be at most %d (a week), got %d", 7*24*60, p.ReplicationIntervalMinutes)
	}
	if len(p.VMs) == 0 {
		return FieldError("vms", "must list at least one protected VM")
	}
	for i := range p.VMs {
		if err := p.VMs[i].validate(fmt.Sprintf("vms[%d]", i)); err != nil {
			return err
		}
		for j := range i {
			if p.VMs[i].ProtectedVMID != "" && p.VMs[j].ProtectedVMID == p.VMs[i].ProtectedVMID {
				return FieldError(fmt.Sprintf("vms[%d].protected_vm_id", i), "%q is listed twice (also vms[%d])", p.VMs[i].ProtectedVMID, j)
			}
			if p.VMs[i].ProtectionRuleID != "" && p.VMs[j].ProtectionRuleID == p.VMs[i].ProtectionRuleID {
				return FieldError(fmt.Sprintf("vms[%d].protection_rule_id", i), "%q is listed twice (also vms[%d])", p.VMs[i].ProtectionRuleID, j)
			}
		}
	}
	if n := p.TestNetwork; n != nil {
		if !vpcIDPattern.MatchString(n.VPCID) {
			return FieldError("test_network.vpc_id", "must be a VPC id such as vpc-0a1b2c3d4e5f60718, got %q", n.VPCID)
		}
		if !subnetIDPattern.MatchString(n.SubnetID) {
			return FieldError("test_network.subnet_id", "must be a subnet id such as subnet-0a1b2c3d4e5f60718, got %q", n.SubnetID)
		}
		if err := validateGroupIDs("test_network.security_group_ids", n.SecurityGroupIDs); err != nil {
			return err
		}
	}
	if p.Group != "" {
		if err := validateName("group", p.Group); err != nil {
			return err
		}
	}
	return nil
}

func (v *DRPlanVM) validate(at string) *Error {
	switch {
	case v.ProtectedVMID == "" && v.ProtectionRuleID == "":
		return FieldError(at+".protected_vm_id", "is required: a protected VM's id or name (or protection_rule_id, a VM protection rule's)")
	case v.ProtectedVMID != "" && v.ProtectionRuleID != "":
		return FieldError(at+".protection_rule_id", "cannot be given with protected_vm_id: an entry is one protected VM, or the VMs of one rule")
	case v.ProtectionRuleID != "" && v.PrivateIP != "":
		return FieldError(at+".private_ip", "cannot be given for a protection rule's VMs: they cannot share one address")
	}
	if v.Name != "" {
		if err := validateName(at+".name", v.Name); err != nil {
			return err
		}
	}
	if v.InstanceType != "" && v.InstanceType != InstanceTypeAuto && !instanceTypePattern.MatchString(v.InstanceType) {
		return FieldError(at+".instance_type", "must be %q or an EC2 instance type such as m6i.large, got %q", InstanceTypeAuto, v.InstanceType)
	}
	if v.SubnetID != "" && !subnetIDPattern.MatchString(v.SubnetID) {
		return FieldError(at+".subnet_id", "must be a subnet id such as subnet-0a1b2c3d4e5f60718, got %q", v.SubnetID)
	}
	if v.PrivateIP != "" {
		a, err := netip.ParseAddr(v.PrivateIP)
		if err != nil || !a.Is4() || !a.IsPrivate() {
			return FieldError(at+".private_ip", "must be a private IPv4 address such as 10.0.1.20, got %q", v.PrivateIP)
		}
		if v.SubnetID == "" {
			return FieldError(at+".subnet_id", "is required with private_ip: the address must belong to the subnet")
		}
	}
	if err := validateGroupIDs(at+".security_group_ids", v.SecurityGroupIDs); err != nil {
		return err
	}
	for k, val := range v.Tags {
		switch {
		case k == "" || len(k) > 128:
			return FieldError(at+".tags", "keys must be 1 to 128 characters, got %q", k)
		case strings.HasPrefix(strings.ToLower(k), "aws:"), strings.HasPrefix(k, "haven:"):
			return FieldError(at+".tags", "key %q: the aws: and haven: prefixes are reserved", k)
		case len(val) > 256:
			return FieldError(at+".tags", "the value of %q must be at most 256 characters", k)
		}
	}
	if v.BootGroup < 0 || v.BootGroup > 100 {
		return FieldError(at+".boot_group", "must be 0 to 100, got %d", v.BootGroup)
	}
	for i, d := range v.DependsOn {
		if d == "" {
			return FieldError(fmt.Sprintf("%s.depends_on[%d]", at, i), "must name a VM of the plan")
		}
		if slices.Index(v.DependsOn, d) < i {
			return FieldError(fmt.Sprintf("%s.depends_on[%d]", at, i), "%q is listed twice", d)
		}
	}
	if len(v.UserData) > 16*1024 {
		return FieldError(at+".user_data", "must be at most 16 KiB (EC2's limit), got %d bytes", len(v.UserData))
	}
	if v.ProbePort < 0 || v.ProbePort > 65535 {
		return FieldError(at+".probe_port", "must be 0 (no probe) or a TCP port, got %d", v.ProbePort)
	}
	return nil
}

// ValidateGraph checks the plan's machines once their names are known:
// names unique, every dependency a VM of the plan in the same or an
// earlier boot group, and no cycle (as the failover's own check does).
func (p *DRPlanSpec) ValidateGraph() *Error {
	byName := map[string]int{}
	for i, v := range p.VMs {
		if j, ok := byName[v.Name]; ok {
			return FieldError(fmt.Sprintf("vms[%d].name", i), "%q is also the name of vms[%d]: names must be unique in the plan", v.Name, j)
		}
		byName[v.Name] = i
	}
	for i, v := range p.VMs {
		for _, d := range v.DependsOn {
			j, ok := byName[d]
			switch {
			case !ok:
				return FieldError(fmt.Sprintf("vms[%d].depends_on", i), "%q is not a VM of the plan", d)
			case j == i:
				return FieldError(fmt.Sprintf("vms[%d].depends_on", i), "%q cannot depend on itself", d)
			case p.VMs[j].BootGroup > v.BootGroup:
				return FieldError(fmt.Sprintf("vms[%d].depends_on", i), "%q boots in group %d, after this VM's group %d", d, p.VMs[j].BootGroup, v.BootGroup)
			}
		}
	}
	state := make([]int, len(p.VMs)) // 1 visiting, 2 done
	var visit func(i int, path []string) *Error
	visit = func(i int, path []string) *Error {
		switch state[i] {
		case 1:
			at := slices.Index(path, p.VMs[i].Name)
			return FieldError(fmt.Sprintf("vms[%d].depends_on", i), "the dependencies loop: %s", strings.Join(append(path[at:], p.VMs[i].Name), " -> "))
		case 2:
			return nil
		}
		state[i] = 1
		for _, d := range p.VMs[i].DependsOn {
			if err := visit(byName[d], append(path, p.VMs[i].Name)); err != nil {
				return err
			}
		}
		state[i] = 2
		return nil
	}
	for i := range p.VMs {
		if err := visit(i, nil); err != nil {
			return err
		}
	}
	return nil
}

func validateGroupIDs(field string, ids []string) *Error {
	for i, g := range ids {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !groupIDPattern.MatchString(g) {
			return FieldError(f, "must be a security group id such as sg-0a1b2c3d4e5f60718, got %q", g)
		}
		if slices.Index(ids, g) < i {
			return FieldError(f, "%q is listed twice", g)
		}
	}
	return nil
}

// ValidateMachineName checks a machine name of a DR plan.
func ValidateMachineName(field, name string) *Error { return validateName(field, name) }
