# Look a vCenter up by name (or by id) to protect its VMs from a workspace
# other than the one that registered it. The password is never exposed.
data "haven_vcenter" "prod" {
  name = "vcenter-prod"
}

output "prod_vcenter" {
  value = {
    id     = data.haven_vcenter.prod.id
    url    = data.haven_vcenter.prod.url
    status = data.haven_vcenter.prod.status
  }
}
