package api

import (
	"encoding/base64"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Protocols a NAS device serves its shares over.
const (
	ProtocolSMB = "smb"
	ProtocolNFS = "nfs"
)

// NASProtocols are the protocols Haven speaks to a NAS, in the order the
// server stores them.
var NASProtocols = []string{ProtocolNFS, ProtocolSMB}

// NASCredentialsContext binds the sealed credentials of NAS devices to
// their purpose: a nas_devices row's sealed secret is NASCredentials as
// JSON, sealed with the master key under this context.
const NASCredentialsContext = "haven/nas/credentials"

// NASCredentials are a NAS device's secrets as they are sealed: at most
// one of an SMB password and a Kerberos keytab (the decoded file).
type NASCredentials struct {
	SMBPassword string `json:"smb_password,omitempty"`
	SMBKeytab   []byte `json:"smb_keytab,omitempty"`
}

// Limits of NAS device and share fields.
const (
	maxSMBShareName = 80
	maxNASText      = 256
)

// NASDeviceSpec is the writable part of a NAS device: a NAS that serves
// shares over SMB, NFS or both, reached through the Haven agents of one or
// more file servers (ProxyFileServerIDs), which act as its NAS proxies.
//
// The nas_devices table keeps this spec without its secrets, plus
// has_smb_password and has_smb_keytab (the row reads as a NASDevice
// without Meta); the secrets are its sealed secret (NASCredentials).
type NASDeviceSpec struct {
	Name string `json:"name"`
	// Host is a host name or an IP address, optionally with the SMB
	// port (nas01.example.com:1445, [2001:db8::5]:445); default 445.
	Host string `json:"host"`
	// Protocols are smb, nfs or both, sorted (nfs before smb).
	Protocols []string `json:"protocols"`
	// SMB: the account the proxies sign in as (required with smb), its
	// domain or Kerberos realm, and exactly one of a password and a
	// keytab (base64 of the keytab file). Both secrets are write-only:
	// sealed with the master key, never returned. An update that sends
	// neither keeps the stored one; one that sends one replaces both.
	SMBUser           string `json:"smb_user,omitempty"`
	SMBDomain         string `json:"smb_domain,omitempty"`
	SMBPassword       string `json:"smb_password,omitempty" api:"writeonly"`
	SMBKerberosKeytab string `json:"smb_kerberos_keytab,omitempty" api:"writeonly"`
	// NFS: the AUTH_UNIX identity the proxies present (default 0, root),
	// and the ports of the NFS and MOUNT services (0: ask the portmapper).
	NFSUID       int64 `json:"nfs_uid"`
	NFSGID       int64 `json:"nfs_gid"`
	NFSPort      int   `json:"nfs_port,omitempty"`
	NFSMountPort int   `json:"nfs_mount_port,omitempty"`
	// ProxyFileServerIDs are file servers of location agent whose agents
	// act as the NAS proxies of this device (ids; the API also takes
	// names and stores their ids).
	ProxyFileServerIDs []string `json:"proxy_file_server_ids"`
	// Group is the administrative group: group_admin tokens of that group
	// may keep NAS shares of this device and restore onto them.
	Group string `json:"group,omitempty"`
}

// NASDeviceRequest is the body of create and update calls.
type NASDeviceRequest struct {
	NASDeviceSpec
	Version *int64 `json:"version,omitempty"`
}

// NASDevice is a stored NAS device: its secrets never come back, only
// whether the server holds them.
type NASDevice struct {
	Meta
	NASDeviceSpec
	HasSMBPassword bool `json:"has_smb_password"`
	HasSMBKeytab   bool `json:"has_smb_keytab"`
}

// NASShareSpec is the writable part of a NAS share: one share (SMB) or
// export (NFS) of a NAS device, or a directory inside it, backed up under
// a policy into a storage.
type NASShareSpec struct {
	Name        string `json:"name"`
	NASDeviceID string `json:"nas_device_id"`
	// Protocol is smb or nfs, one of the device's protocols.
	Protocol string `json:"protocol"`
	// Share is the SMB share's name (no slashes) or the NFS export's
	// absolute path.
	Share string `json:"share"`
	// Path is a directory inside the share to protect, relative to its
	// root with / between names ("projects/2024"); empty: the whole share.
	Path string `json:"path,omitempty"`
	// Include, when not empty, backs up only what matches one of these
	// globs (or lies below a directory that does); Exclude leaves out what
	// matches. The syntax is that of a fileset's exclude_globs.
	Include   []string `json:"include,omitempty"`
	Exclude   []string `json:"exclude,omitempty"`
	PolicyID  string   `json:"policy_id"`
	StorageID string   `json:"storage_id"`
}

// NASShareRequest is the body of create and update calls.
type NASShareRequest struct {
	NASShareSpec
	Version *int64 `json:"version,omitempty"`
}

// NASShare is a stored NAS share. Group is its device's, which the server
// keeps up to date: the nas_shares table keeps the spec with it (the row
// reads as a NASShare without Meta), where the group checks of the share,
// its jobs and its points read it.
type NASShare struct {
	Meta
	NASShareSpec
	Group string `json:"group,omitempty"`
}

// NASRestore says how to restore a point of a NAS share (and only such).
// The point's paths, include and exclude of the RestoreRequest select what
// is restored; target_file_server_id, target_path and conflict do not
// apply (share_id, path and conflict here take their place).
type NASRestore struct {
	// ShareID is the NAS share restored into; default the point's own.
	ShareID string `json:"share_id,omitempty"`
	// Path is a directory inside the target share under which the
	// backed-up paths are recreated, in Path's syntax of NASShareSpec;
	// empty: where the files were.
	Path string `json:"path,omitempty"`
	// Conflict is overwrite (default), skip or rename, as a file restore's.
	Conflict string `json:"conflict,omitempty"`
}

// RestoreConflicts are what a restore may do with a file that exists at
// its destination.
var RestoreConflicts = []string{"overwrite", "skip", "rename"}

// Validate reports the first invalid field of a NAS restore (field names
// are prefixed with "nas.") and fills in the default conflict.
func (n *NASRestore) Validate() *Error {
	if n.Conflict == "" {
		n.Conflict = "overwrite"
	}
	if !slices.Contains(RestoreConflicts, n.Conflict) {
		return FieldError("nas.conflict", "must be overwrite, skip or rename, got %q", n.Conflict)
	}
	if n.Path != "" && !ValidSharePath(n.Path) {
		return FieldError("nas.path", "%s", sharePathRule(n.Path))
	}
	return nil
}

// ValidSharePath reports whether p is a directory inside a share as a
// NAS share's path and a NAS restore's path take it: relative to the
// share's root, with / between names, clean (no ".", "..", empty names or
// trailing slash), without backslashes or control characters.
func ValidSharePath(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && !strings.ContainsRune(p, '\\') && !hasControl(p) &&
		path.Clean(p) == p && p != "." && p != ".." && !strings.HasPrefix(p, "../")
}

func sharePathRule(p string) string {
	return fmt.Sprintf("must be a directory inside the share, relative to its root with / between names and "+
		"no . or .. (such as \"projects/2024\"), got %q", p)
}

func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

// Validate reports the first invalid field of a NAS device, and sorts its
// protocols. Whether the server holds the secret SMB needs is checked
// when the device is stored, since an update may keep the stored one.
func (s *NASDeviceSpec) Validate() *Error {
	if err := validateName("name", s.Name); err != nil {
		return err
	}
	if _, _, err := SplitNASHost(s.Host); err != "" {
		return FieldError("host", "%s", err)
	}
	if len(s.Protocols) == 0 {
		return FieldError("protocols", "needs at least one of %q and %q", ProtocolSMB, ProtocolNFS)
	}
	for i, p := range s.Protocols {
		if !slices.Contains(NASProtocols, p) {
			return FieldError("protocols["+strconv.Itoa(i)+"]", "must be %q or %q, got %q", ProtocolSMB, ProtocolNFS, p)
		}
		if slices.Index(s.Protocols, p) != i {
			return FieldError("protocols["+strconv.Itoa(i)+"]", "lists %q twice", p)
		}
	}
	slices.Sort(s.Protocols)
	smb, nfs := s.Serves(ProtocolSMB), s.Serves(ProtocolNFS)
	for _, f := range []struct {
		field, value string
		set          bool
	}{{"smb_user", s.SMBUser, s.SMBUser != ""}, {"smb_domain", s.SMBDomain, s.SMBDomain != ""},
		{"smb_password", "", s.SMBPassword != ""}, {"smb_kerberos_keytab", "", s.SMBKerberosKeytab != ""}} {
		if f.set && !smb {
			return FieldError(f.field, "applies to SMB only, and protocols does not include %q", ProtocolSMB)
		}
		if len(f.value) > maxNASText || hasControl(f.value) || strings.ContainsAny(f.value, `\/`) {
			return FieldError(f.field, "must be at most %d characters, without slashes, backslashes or control characters, got %q", maxNASText, f.value)
		}
	}
	if _, port, _ := SplitNASHost(s.Host); port != 0 && !smb {
		return FieldError("host", "names a port, which is SMB's, and protocols does not include %q (NFS ports are nfs_port and nfs_mount_port)", ProtocolSMB)
	}
	if smb && s.SMBUser == "" {
		return FieldError("smb_user", "is required with %q: the account the NAS proxies sign in as", ProtocolSMB)
	}
	if s.SMBPassword != "" && s.SMBKerberosKeytab != "" {
		return FieldError("smb_kerberos_keytab", "cannot be given with smb_password: give one of them")
	}
	if s.SMBKerberosKeytab != "" {
		if _, err := DecodeKeytab(s.SMBKerberosKeytab); err != nil {
			return FieldError("smb_kerberos_keytab", "%v", err)
		}
	}
	for _, f := range []struct {
		field string
		v     int64
	}{{"nfs_uid", s.NFSUID}, {"nfs_gid", s.NFSGID}} {
		if f.v < 0 || f.v > 1<<32-1 {
			return FieldError(f.field, "must be between 0 and 4294967295, got %d", f.v)
		}
		if f.v != 0 && !nfs {
			return FieldError(f.field, "applies to NFS only, and protocols does not include %q", ProtocolNFS)
		}
	}
	for _, f := range []struct {
		field string
		v     int
	}{{"nfs_port", s.NFSPort}, {"nfs_mount_port", s.NFSMountPort}} {
		if f.v < 0 || f.v > 65535 {
			return FieldError(f.field, "must be between 1 and 65535, got %d", f.v)
		}
		if f.v != 0 && !nfs {
			return FieldError(f.field, "applies to NFS only, and protocols does not include %q", ProtocolNFS)
		}
	}
	if len(s.ProxyFileServerIDs) == 0 {
		return FieldError("proxy_file_server_ids", "needs at least one file server of location %q: its agent is the NAS proxy", LocationAgent)
	}
	for i, id := range s.ProxyFileServerIDs {
		if id == "" {
			return FieldError("proxy_file_server_ids["+strconv.Itoa(i)+"]", "is required")
		}
	}
	if s.Group != "" {
		if err := validateName("group", s.Group); err != nil {
			return err
		}
	}
	return nil
}

// Serves reports whether the device serves protocol.
func (s *NASDeviceSpec) Serves(protocol string) bool { return slices.Contains(s.Protocols, protocol) }

// SplitNASHost splits a NAS device's host into the host name or address
// and the port (0 when none is given). problem says what is wrong with
// one that is not a host name, an IP address, or either with a port.
func SplitNASHost(h string) (host string, port int, problem string) {
	bad := fmt.Sprintf("must be a host name or an IP address, optionally with a port (nas01.example.com, 192.0.2.10:445, [2001:db8::5]:445), got %q", h)
	if ip := net.ParseIP(h); ip != nil {
		return h, 0, ""
	}
	host = h
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		var p string
		var err error
		if host, p, err = net.SplitHostPort(h); err != nil {
			return "", 0, bad
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strings.HasPrefix(p, "0") {
			return "", 0, bad
		}
		if strings.HasPrefix(h, "[") && (net.ParseIP(host) == nil || !strings.Contains(host, ":")) {
			return "", 0, bad
		}
		port = n
	}
	if net.ParseIP(host) != nil || validHostName(host) {
		return host, port, ""
	}
	return "", 0, bad
}

// validHostName accepts DNS names as NAS appliances and resolvers use
// them: 1-253 characters of letters, digits, '-', '_' and '.', in labels
// of at most 63 that neither start nor end with '-'.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// DecodeKeytab decodes a NAS device's smb_kerberos_keytab: base64 (standard
// alphabet) of a keytab file in the MIT format (version 0x0501 or 0x0502).
func DecodeKeytab(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("must be the base64 of a keytab file (such as filebase64(\"nas.keytab\")): %v", err)
	}
	if len(b) < 2 || b[0] != 0x05 || (b[1] != 0x01 && b[1] != 0x02) {
		return nil, fmt.Errorf("is not a keytab file: one starts with the bytes 05 02 (or 05 01), this one with % x", b[:min(len(b), 2)])
	}
	return b, nil
}

// Validate reports the first invalid field of a NAS share. That protocol
// is one of the device's is checked when the share is stored.
func (s *NASShareSpec) Validate() *Error {
	if err := validateName("name", s.Name); err != nil {
		return err
	}
	switch {
	case s.NASDeviceID == "":
		return FieldError("nas_device_id", "is required")
	case s.Protocol != ProtocolSMB && s.Protocol != ProtocolNFS:
		return FieldError("protocol", "must be %q or %q, got %q", ProtocolSMB, ProtocolNFS, s.Protocol)
	case s.Share == "":
		return FieldError("share", "is required: the SMB share's name, or the NFS export's path")
	case s.PolicyID == "":
		return FieldError("policy_id", "is required")
	case s.StorageID == "":
		return FieldError("storage_id", "is required")
	}
	if problem := ShareNameProblem(s.Protocol, s.Share); problem != "" {
		return FieldError("share", "%s", problem)
	}
	if s.Path != "" && !ValidSharePath(s.Path) {
		return FieldError("path", "%s", sharePathRule(s.Path))
	}
	for _, globs := range []struct {
		field string
		list  []string
	}{{"include", s.Include}, {"exclude", s.Exclude}} {
		for i, g := range globs.list {
			if !ValidGlob(g) {
				return FieldError(globs.field+"["+strconv.Itoa(i)+"]", "is not a valid glob: %q", g)
			}
		}
	}
	return nil
}

// ShareNameProblem says what is wrong with share as the share of a NAS
// share of protocol, or "" when nothing is: an SMB share's name (no
// slashes or control characters, at most 80 characters) or an NFS
// export's clean absolute path.
func ShareNameProblem(protocol, share string) string {
	switch protocol {
	case ProtocolSMB:
		if share == "" || len(share) > maxSMBShareName || strings.ContainsAny(share, `/\`) || hasControl(share) {
			return fmt.Sprintf("must be the name of an SMB share (at most %d characters, without slashes or control "+
				"characters, such as \"projects\"), got %q", maxSMBShareName, share)
		}
	case ProtocolNFS:
		if !strings.HasPrefix(share, "/") || path.Clean(share) != share || hasControl(share) || strings.ContainsRune(share, '\\') {
			return fmt.Sprintf("must be the clean absolute path of an NFS export (such as \"/export/projects\"), got %q", share)
		}
	}
	return ""
}
