# Find the VM by name once; the protection names it by instance UUID, which
# survives renames and moves.
data "haven_vm" "db" {
  vcenter_id = haven_vcenter.prod.id
  name       = "db-01"
}

# The guest password is write-only: Terraform sends it to the Haven server,
# which keeps it encrypted, and never stores it in the plan or the state.
variable "db_guest_password" {
  description = "Password of the guest account that runs the policy's freeze and thaw scripts."
  type        = string
  sensitive   = true
  ephemeral   = true
}

resource "haven_protected_vm" "db" {
  vcenter_id    = haven_vcenter.prod.id
  instance_uuid = data.haven_vm.db.instance_uuid
  policy_id     = haven_backup_policy.gold.id
  storage_id    = haven_storage.local.id

  # The second disk holds scratch data that is not worth keeping.
  exclude_disks = [data.haven_vm.db.disks[1].key]

  # Quiesce the guest through VMware Tools, whatever the policy says.
  app_consistent = true
  guest_username = "root"
  guest_password = var.db_guest_password
  # Terraform cannot see changes of a write-only value: bump this number
  # whenever the password changes, and the next apply sends the new one.
  guest_password_version = 1

  # Tokens with the group_admin role for "databases" may manage this VM's
  # protection and run its backups and restores.
  group = "databases"
}

# The smallest protection: every disk, under the policy's own settings.
data "haven_vm" "app" {
  vcenter_id = haven_vcenter.prod.id
  name       = "app-01"
}

resource "haven_protected_vm" "app" {
  vcenter_id    = haven_vcenter.prod.id
  instance_uuid = data.haven_vm.app.instance_uuid
  policy_id     = haven_backup_policy.gold.id
  storage_id    = haven_storage.local.id
}
