# When to restore to, given at apply time:
#   terraform apply -var restore_as_of=2026-03-01T18:00:00+01:00
variable "restore_as_of" {
  description = "Restore the files as they were at this RFC 3339 time."
  type        = string
}

# The home directories as they were at that time: the latest recovery
# point that completed at or before it. Reading fails when there is none,
# so the restore below is never planned without a point.
data "haven_recovery_point" "home_as_of" {
  asset_id = haven_fileset.home.id
  at       = var.restore_as_of
}

# Restore that point next to the live files, for comparison:
# /home/alice/report.odt comes back as /srv/restore/home/alice/report.odt.
resource "haven_restore" "home_as_of" {
  point_id    = data.haven_recovery_point.home_as_of.id
  target_path = "/srv/restore"
}

# The latest point, whatever its time. Without `at` it changes with every
# backup, so it is better suited to reports than to restores.
data "haven_recovery_point" "home_latest" {
  asset_id = haven_fileset.home.id
}

output "home_latest_backup" {
  value = "${data.haven_recovery_point.home_latest.kind} backup completed at ${data.haven_recovery_point.home_latest.completed_at}"
}

# For a database set with log backups: the point a restore to an instant
# starts from, the log point whose logs span it.
#   terraform apply -var incident_time=2026-03-01T17:59:00Z
variable "incident_time" {
  description = "Restore the orders cluster as it was at this RFC 3339 time."
  type        = string
}

data "haven_recovery_point" "orders_at_incident" {
  asset_id    = haven_database_set.orders.id
  covers_time = var.incident_time
}

# Restore the cluster as it was at that instant into a new data directory
# on its host, beside the original.
resource "haven_restore" "orders_at_incident" {
  point_id = data.haven_recovery_point.orders_at_incident.id

  database {
    data_dir      = "/var/lib/postgresql/16/at-incident"
    port          = 5433
    point_in_time = var.incident_time
  }
}
