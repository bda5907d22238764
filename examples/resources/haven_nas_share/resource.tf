# The finance department's directory of the filer's "projects" share,
# over SMB, under the gold policy: its spreadsheets and documents, without
# Office's lock files. The share takes its device's group, file-services.
resource "haven_nas_share" "finance" {
  name          = "finance"
  nas_device_id = haven_nas_device.filer.id
  protocol      = "smb"
  share         = "projects"
  path          = "departments/finance"
  include       = ["**/*.xlsx", "**/*.docx"]
  exclude       = ["~$*"]
  policy_id     = haven_backup_policy.gold.id
  storage_id    = haven_storage.local.id
}

# A whole NFS export of the archive appliance, kept offsite, without the
# users' caches.
resource "haven_nas_share" "home" {
  name          = "archive-home"
  nas_device_id = haven_nas_device.archive.id
  protocol      = "nfs"
  share         = "/export/home"
  exclude       = ["**/.cache"]
  policy_id     = haven_backup_policy.gold.id
  storage_id    = haven_storage.offsite.id
}
