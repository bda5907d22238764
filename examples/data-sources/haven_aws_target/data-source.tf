# Look an AWS target up by name (or by id) from a workspace other than the
# one that registered it. The secret access key is never exposed.
data "haven_aws_target" "dr" {
  name = "aws-dr"
}

output "dr_target" {
  value = {
    id         = data.haven_aws_target.dr.id
    account_id = data.haven_aws_target.dr.account_id
    region     = data.haven_aws_target.dr.region
    status     = data.haven_aws_target.dr.status
  }
}
