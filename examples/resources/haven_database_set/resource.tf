# The whole orders cluster (every database and tablespace), under the sql
# policy: a full on the first of the month, differentials every four hours
# and log backups every 15 minutes, which make restores to any instant of
# the last week possible. Each full and differential is restored into a
# scratch cluster and checked.
resource "haven_database_set" "orders" {
  name               = "orders"
  database_server_id = haven_database_server.orders.id
  policy_id          = haven_backup_policy.sql.id
  storage_id         = haven_storage.local.id
  verify_restore     = true
  group              = "databases"
}

# Nightly fulls of the reports cluster, kept offsite.
resource "haven_database_set" "reports" {
  name               = "reports"
  database_server_id = haven_database_server.reports.id
  policy_id          = haven_backup_policy.gold.id
  storage_id         = haven_storage.offsite.id
}
