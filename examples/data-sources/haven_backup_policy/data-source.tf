# Look a backup policy up by name (or by id), for example to refer to a
# company-wide policy from a team's workspace.
data "haven_backup_policy" "gold" {
  name = "gold"
}

output "gold_schedule" {
  value = "full on ${join(", ", data.haven_backup_policy.gold.full.days_of_week)} at ${data.haven_backup_policy.gold.full.at} (${data.haven_backup_policy.gold.timezone})"
}

output "gold_keeps_yearlies_for" {
  value = data.haven_backup_policy.gold.retention.yearly_years
}
