# Look a NAS share up by name (or by id): its id is the asset id that
# haven_recovery_point and `haven points list` take, and the share_id a
# haven_restore's nas block restores into.
data "haven_nas_share" "finance" {
  name = "finance"
}

output "finance_share" {
  value = "${data.haven_nas_share.finance.protocol}: ${data.haven_nas_share.finance.share}/${data.haven_nas_share.finance.path}"
}
