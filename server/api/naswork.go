package api

// NASWork is a NAS share's job as its proxy (the agent of one of the
// device's proxy file servers) receives it: how to reach the share, and
// what to back up or where to restore. The SMB secrets are not stored in
// the job: they are filled in as the work is handed out.
type NASWork struct {
	Protocol string `json:"protocol"`
	// Host is the NAS's host, with the SMB port if not 445.
	Host string `json:"host"`
	// Share is the SMB share's name or the NFS export's path.
	Share string `json:"share"`
	// SMB: the account, its domain, and a password or a keytab.
	SMBUser     string `json:"smb_user,omitempty"`
	SMBDomain   string `json:"smb_domain,omitempty"`
	SMBPassword string `json:"smb_password,omitempty"`
	SMBKeytab   []byte `json:"smb_keytab,omitempty"`
	// NFS: the AUTH_UNIX identity and the service ports (0: portmapper).
	NFSUID       uint32 `json:"nfs_uid,omitempty"`
	NFSGID       uint32 `json:"nfs_gid,omitempty"`
	NFSPort      int    `json:"nfs_port,omitempty"`
	NFSMountPort int    `json:"nfs_mount_port,omitempty"`

	// Backup: the directory inside the share, the globs, and the
	// policy's cap on what the proxy reads from the NAS (bytes a second,
	// 0 for none; scheduled backups only).
	Path          string   `json:"path,omitempty"`
	Include       []string `json:"include,omitempty"`
	Exclude       []string `json:"exclude,omitempty"`
	ReadBytesPerS int64    `json:"read_bytes_per_s,omitempty"`

	// Restore: the directory inside the target share that stands for the
	// point's share root, and whether that is somewhere else than where
	// the point was taken (security descriptors then follow the
	// alternate-location inheritance rule).
	Target    string `json:"target,omitempty"`
	Alternate bool   `json:"alternate,omitempty"`
}

// Source names the share as a point records it: smb://host/share or
// nfs://host/export.
func (w *NASWork) Source() string {
	if w.Protocol == ProtocolNFS {
		return "nfs://" + w.Host + w.Share
	}
	return "smb://" + w.Host + "/" + w.Share
}
