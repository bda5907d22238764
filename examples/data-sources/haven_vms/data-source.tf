# All VMs of the production folder (and its subfolders).
data "haven_vms" "prod" {
  vcenter_id = haven_vcenter.prod.id
  folder     = "/DC1/vm/prod"
}

# VMs tagged for the gold policy whose names start with "db-". The
# filters combine with AND.
data "haven_vms" "gold_databases" {
  vcenter_id = haven_vcenter.prod.id
  tag        = "backup:gold"
  name_regex = "^db-"
}

output "prod_vm_names" {
  value = [for vm in data.haven_vms.prod.vms : vm.name]
}
