package api

import (
	"regexp"
	"strconv"
	"strings"
)

// Protection states of a protected VM.
const (
	// VMActive: backed up on its policy's schedule.
	VMActive = "active"
	// VMUnselected: a selection rule protected it and no longer selects it
	// (or the rule is gone). It is not backed up; its points live out their
	// retention.
	VMUnselected = "unselected"
	// VMMissing: the VM is not in the vCenter's inventory any more.
	VMMissing = "missing"
)

// ProtectedVMSpec is the writable part of a protected VM: which VM of which
// vCenter, under which policy, into which storage.
type ProtectedVMSpec struct {
	VCenterID string `json:"vcenter_id"`
	// InstanceUUID (config.instanceUuid) identifies the VM; it survives
	// renames and moves, unlike names and morefs.
	InstanceUUID string `json:"instance_uuid"`
	PolicyID     string `json:"policy_id"`
	StorageID    string `json:"storage_id"`
	// ExcludeDisks are device keys (2000, 2001, ... on vSphere) of disks
	// not to back up.
	ExcludeDisks []int32 `json:"exclude_disks,omitempty"`
	// AppConsistent overrides the policy's app_consistent when set.
	AppConsistent *bool `json:"app_consistent,omitempty"`
	// Guest credentials run the policy's pre-freeze and post-thaw scripts
	// through VMware Tools guest operations. The password is write-only.
	GuestUsername string `json:"guest_username,omitempty"`
	GuestPassword string `json:"guest_password,omitempty" api:"writeonly"`
	Group         string `json:"group,omitempty"`
}

// ProtectedVMRequest is the body of create and update calls.
type ProtectedVMRequest struct {
	ProtectedVMSpec
	Version *int64 `json:"version,omitempty"`
}

// ProtectedVM is a protected VM as the server returns it.
type ProtectedVM struct {
	Meta
	ProtectedVMSpec
	// Name and MoRef are the VM's as last seen in the inventory.
	Name             string `json:"name"`
	MoRef            string `json:"moref,omitempty"`
	Status           string `json:"status"`
	RuleID           string `json:"rule_id,omitempty"`
	HasGuestPassword bool   `json:"has_guest_password"`
}

// ProtectedVMObjectName is the unique stored name of a protected VM: one
// protection per VM per vCenter, whoever declares it.
func ProtectedVMObjectName(vcenterID, instanceUUID string) string {
	return vcenterID + "/" + strings.ToLower(instanceUUID)
}

// VMProtectionRuleSpec selects VMs of a vCenter and protects them. A VM is
// selected when it matches every selector given (any of Folders, any of
// Tags, NameRegex) and no exclusion.
type VMProtectionRuleSpec struct {
	Name      string `json:"name"`
	VCenterID string `json:"vcenter_id"`
	// Folders are inventory paths ("/DC0/vm/prod"); a VM in one of them or
	// below matches.
	Folders []string `json:"folders,omitempty"`
	// Tags are "category:tag"; a VM carrying any of them matches.
	Tags      []string `json:"tags,omitempty"`
	NameRegex string   `json:"name_regex,omitempty"`
	// ExcludeNameRegex and ExcludeInstanceUUIDs take VMs out of the selection.
	ExcludeNameRegex     string   `json:"exclude_name_regex,omitempty"`
	ExcludeInstanceUUIDs []string `json:"exclude_instance_uuids,omitempty"`
	PolicyID             string   `json:"policy_id"`
	StorageID            string   `json:"storage_id"`
	Group                string   `json:"group,omitempty"`
}

// VMProtectionRuleRequest is the body of create and update calls.
type VMProtectionRuleRequest struct {
	VMProtectionRuleSpec
	Version *int64 `json:"version,omitempty"`
}

// VMProtectionRule is a stored rule; SelectedCount is how many VMs it
// protected at its last reconcile.
type VMProtectionRule struct {
	Meta
	VMProtectionRuleSpec
	SelectedCount int `json:"selected_count"`
}

var (
	instanceUUIDPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	tagPattern          = regexp.MustCompile(`^[^:]+:[^:]+$`)
)

// Validate reports the first invalid field of a protected VM.
func (p *ProtectedVMSpec) Validate() *Error {
	for _, f := range []struct{ name, v string }{{"vcenter_id", p.VCenterID}, {"instance_uuid", p.InstanceUUID},
		{"policy_id", p.PolicyID}, {"storage_id", p.StorageID}} {
		if f.v == "" {
			return FieldError(f.name, "is required")
		}
	}
	if !instanceUUIDPattern.MatchString(p.InstanceUUID) {
		return FieldError("instance_uuid", "must be a VM instance UUID (config.instanceUuid), such as 502e71fa-1a5a-e3b6-4a0b-1d2f3c4b5a69, got %q", p.InstanceUUID)
	}
	seen := map[int32]bool{}
	for i, k := range p.ExcludeDisks {
		if k <= 0 {
			return FieldError("exclude_disks["+strconv.Itoa(i)+"]", "must be a virtual disk's device key (such as 2000, as haven_vm lists them), got %d", k)
		}
		if seen[k] {
			return FieldError("exclude_disks["+strconv.Itoa(i)+"]", "lists disk %d twice", k)
		}
		seen[k] = true
	}
	if p.GuestPassword != "" && p.GuestUsername == "" {
		return FieldError("guest_username", "is required with guest_password")
	}
	if p.Group != "" {
		if err := validateName("group", p.Group); err != nil {
			return err
		}
	}
	return nil
}

// Validate reports the first invalid field of a VM protection rule.
func (r *VMProtectionRuleSpec) Validate() *Error {
	if err := validateName("name", r.Name); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"vcenter_id", r.VCenterID}, {"policy_id", r.PolicyID}, {"storage_id", r.StorageID}} {
		if f.v == "" {
			return FieldError(f.name, "is required")
		}
	}
	if len(r.Folders) == 0 && len(r.Tags) == 0 && r.NameRegex == "" {
		return FieldError("folders", "give at least one selector: folders, tags or name_regex")
	}
	for i, f := range r.Folders {
		if !strings.HasPrefix(f, "/") || strings.HasSuffix(f, "/") && f != "/" {
			return FieldError("folders["+strconv.Itoa(i)+"]", "must be an inventory path such as /DC0/vm/prod, got %q", f)
		}
	}
	for i, t := range r.Tags {
		if !tagPattern.MatchString(t) {
			return FieldError("tags["+strconv.Itoa(i)+"]", "must be written category:tag, such as backup:gold, got %q", t)
		}
	}
	for _, f := range []struct{ name, v string }{{"name_regex", r.NameRegex}, {"exclude_name_regex", r.ExcludeNameRegex}} {
		if _, err := regexp.Compile(f.v); err != nil {
			return FieldError(f.name, "is not a valid regular expression: %v", err)
		}
	}
	for i, u := range r.ExcludeInstanceUUIDs {
		if !instanceUUIDPattern.MatchString(u) {
			return FieldError("exclude_instance_uuids["+strconv.Itoa(i)+"]", "must be a VM instance UUID, got %q", u)
		}
	}
	if r.Group != "" {
		if err := validateName("group", r.Group); err != nil {
			return err
		}
	}
	return nil
}

// Matcher compiles the rule's selectors once into a test of whether a VM
// of the rule's vCenter is selected; a reconcile applies it to every VM of
// the inventory. The rule must have passed Validate.
func (r *VMProtectionRuleSpec) Matcher() func(VM) bool {
	var name, exclude *regexp.Regexp
	if r.NameRegex != "" {
		name = regexp.MustCompile(r.NameRegex)
	}
	if r.ExcludeNameRegex != "" {
		exclude = regexp.MustCompile(r.ExcludeNameRegex)
	}
	return func(vm VM) bool {
		switch {
		case len(r.Folders) > 0 && !anyOf(r.Folders, func(f string) bool { return vm.Folder == f || strings.HasPrefix(vm.Folder, f+"/") }):
			return false
		case len(r.Tags) > 0 && !anyOf(r.Tags, func(t string) bool { return anyOf(vm.Tags, func(v string) bool { return v == t }) }):
			return false
		case name != nil && !name.MatchString(vm.Name), exclude != nil && exclude.MatchString(vm.Name):
			return false
		}
		return !anyOf(r.ExcludeInstanceUUIDs, func(u string) bool { return strings.EqualFold(u, vm.InstanceUUID) })
	}
}

func anyOf(xs []string, f func(string) bool) bool {
	for _, x := range xs {
		if f(x) {
			return true
		}
	}
	return false
}
