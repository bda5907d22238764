# Look a fileset up by name (or by id): its id is the asset id that
# `haven backup now` and `haven points list` take.
data "haven_fileset" "finance" {
  name = "finance-shares"
}

output "finance_paths" {
  value = data.haven_fileset.finance.include_paths
}
