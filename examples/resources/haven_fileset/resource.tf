# Home directories and configuration of the Haven host, backed up under the
# gold policy into the local storage. Cache directories and temporary files
# are left out.
resource "haven_fileset" "home" {
  name           = "home"
  file_server_id = haven_file_server.this_host.id
  include_paths  = ["/home", "/etc"]
  exclude_globs  = ["*.tmp", ".cache"]
  policy_id      = haven_backup_policy.gold.id
  storage_id     = haven_storage.local.id
}

# Finance shares on the Windows file server, kept offsite. Tokens with the
# group_admin role for the "finance" group may manage this fileset and run
# its backups and restores.
resource "haven_fileset" "finance" {
  name           = "finance-shares"
  file_server_id = haven_file_server.nas.id
  include_paths  = ["D:\\Shares\\Finance", "D:\\Shares\\Payroll"]
  exclude_globs  = ["~$*", "Thumbs.db"]
  policy_id      = haven_backup_policy.gold.id
  storage_id     = haven_storage.offsite.id
  group          = "finance"
}
