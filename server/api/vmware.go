package api

import (
	"net/url"
	"regexp"
	"time"
)

// VCenterSpec is the writable part of a vCenter registration.
type VCenterSpec struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	Username string `json:"username"`
	// Password is write-only: stored sealed with the master key, never returned.
	Password string `json:"password,omitempty" api:"writeonly"`
	// Trust: a pinned certificate thumbprint (SHA-1 or SHA-256), a CA
	// certificate in PEM, or insecure (no verification).
	Thumbprint string `json:"thumbprint,omitempty"`
	CAPEM      string `json:"ca_pem,omitempty"`
	Insecure   bool   `json:"insecure,omitempty"`
	// Group is the administrative group: group_admin tokens of that group
	// may restore VMs into this vCenter.
	Group string `json:"group,omitempty"`
}

// VCenterRequest is the body of create and update calls.
type VCenterRequest struct {
	VCenterSpec
	Version *int64 `json:"version,omitempty"`
}

// VCenter is a registered vCenter as the server returns it. The server
// logs in on create and update; Status says how the last login went.
type VCenter struct {
	Meta
	VCenterSpec
	HasPassword   bool       `json:"has_password"`
	Status        string     `json:"status"` // connected or error
	StatusMessage string     `json:"status_message,omitempty"`
	CheckedAt     *time.Time `json:"checked_at,omitempty"`
}

// VMDisk is one virtual disk of a VM.
type VMDisk struct {
	Key           int32  `json:"key"`
	Label         string `json:"label"`
	CapacityBytes int64  `json:"capacity_bytes"`
}

// VM is a virtual machine as the server sees it in a vCenter's inventory.
type VM struct {
	VCenterID     string   `json:"vcenter_id"`
	Name          string   `json:"name"`
	InventoryPath string   `json:"inventory_path"`
	InstanceUUID  string   `json:"instance_uuid"`
	MoRef         string   `json:"moref"`
	Folder        string   `json:"folder"`
	Tags          []string `json:"tags"`
	PowerState    string   `json:"power_state"`
	Disks         []VMDisk `json:"disks"`
}

// VMFilter narrows an inventory listing. Exact lookups (Name,
// InventoryPath, InstanceUUID, MoRef) and filters (Folder: the VM's folder
// or below; Tag: "category:tag"; NameRegex) combine with AND.
type VMFilter struct {
	Name, InventoryPath, InstanceUUID, MoRef string
	Folder, Tag, NameRegex                   string
}

// Query encodes the filter as URL query parameters.
func (f VMFilter) Query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"name": f.Name, "inventory_path": f.InventoryPath, "instance_uuid": f.InstanceUUID,
		"moref": f.MoRef, "folder": f.Folder, "tag": f.Tag, "name_regex": f.NameRegex} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

var thumbprintPattern = regexp.MustCompile(`^([0-9A-Fa-f]{2}:?){19}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$`)

// Validate reports the first invalid field of a vCenter registration. A
// password may be absent when keepPassword (an update keeping the stored one).
func (v *VCenterSpec) Validate(keepPassword bool) *Error {
	if err := validateName("name", v.Name); err != nil {
		return err
	}
	u, err := url.Parse(v.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return FieldError("url", "must be an https URL such as https://vcenter.example.com/sdk, got %q", v.URL)
	}
	if v.Username == "" {
		return FieldError("username", "is required")
	}
	if v.Group != "" {
		if err := validateName("group", v.Group); err != nil {
			return err
		}
	}
	if v.Password == "" && !keepPassword {
		return FieldError("password", "is required")
	}
	if v.Thumbprint != "" && !thumbprintPattern.MatchString(v.Thumbprint) {
		return FieldError("thumbprint", "must be a SHA-1 or SHA-256 certificate thumbprint in hex (colons optional)")
	}
	trust := 0
	for _, set := range []bool{v.Thumbprint != "", v.CAPEM != "", v.Insecure} {
		if set {
			trust++
		}
	}
	if trust > 1 {
		return FieldError("insecure", "give one of thumbprint, ca_pem or insecure")
	}
	if trust == 0 {
		return FieldError("thumbprint", "say how to trust the vCenter: thumbprint, ca_pem, or insecure = true")
	}
	return nil
}
