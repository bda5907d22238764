# The NAS proxy: a host that runs the haven agent, declared as a file
# server of location agent (see haven_file_server_activation for its
# enrolment). Its agent speaks SMB and NFS to the NAS itself, without
# mounting anything.
resource "haven_file_server" "nas_proxy" {
  name     = "nas-proxy-01"
  hostname = "nas-proxy-01.corp.example.com"
  os       = "linux"
  location = "agent"
}

# The SMB password is write-only: Terraform sends it to the Haven server,
# which keeps it encrypted and hands it only to the NAS proxies, and never
# stores it in the plan or the state. An ephemeral variable keeps it out
# of the plan file too.
variable "filer_smb_password" {
  description = "Password of the account Haven signs in to the filer as."
  type        = string
  sensitive   = true
  ephemeral   = true
}

# A filer that serves its shares over SMB and NFS. Over SMB the proxies
# sign in as CORP\svc-haven-backup, an account that may read every file
# and its security descriptor (see the NAS guide for the rights, SACLs
# included); over NFS they present uid 0 and gid 0, which the exports must
# not squash.
resource "haven_nas_device" "filer" {
  name                  = "filer01"
  host                  = "filer01.corp.example.com"
  protocols             = ["smb", "nfs"]
  proxy_file_server_ids = [haven_file_server.nas_proxy.id]

  smb_user     = "svc-haven-backup"
  smb_domain   = "CORP"
  smb_password = var.filer_smb_password
  # Or a Kerberos keytab instead of the password:
  # smb_kerberos_keytab = filebase64("svc-haven-backup.keytab")

  # Terraform cannot see changes of a write-only value: bump this number
  # whenever the password changes, and the next apply sends the new one.
  smb_credentials_version = 1

  # Tokens with the group_admin role for "file-services" may keep NAS
  # shares of this filer and restore onto them.
  group = "file-services"
}

# An NFS-only appliance whose services listen on fixed ports, without a
# portmapper to ask.
resource "haven_nas_device" "archive" {
  name                  = "archive"
  host                  = "192.0.2.40"
  protocols             = ["nfs"]
  nfs_port              = 2049
  nfs_mount_port        = 20048
  proxy_file_server_ids = [haven_file_server.nas_proxy.id]
}
