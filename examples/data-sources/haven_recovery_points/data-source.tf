# The ten newest recovery points of the home directories.
data "haven_recovery_points" "home_recent" {
  asset_id = haven_fileset.home.id
  limit    = 10
}

output "home_recent" {
  value = [for p in data.haven_recovery_points.home_recent.points : "${p.completed_at} ${p.kind} ${p.id}"]
}

# Full backups of any asset completed in March 2026, Paris time. Both
# bounds are exclusive.
data "haven_recovery_points" "march_fulls" {
  kind           = "full"
  created_after  = "2026-03-01T00:00:00+01:00"
  created_before = "2026-04-01T00:00:00+02:00"
}

# Points already moved to the cold tier, which take longer to restore.
data "haven_recovery_points" "cold" {
  tier = "cold"
}

output "cold_point_count" {
  value = length(data.haven_recovery_points.cold.points)
}
