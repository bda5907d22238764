# Find one VM of a registered vCenter by name. Names can repeat across
# folders: inventory_path (such as "/DC1/vm/prod/app-01"), instance_uuid or
# moref pick a VM unambiguously. Reading fails unless exactly one VM matches.
data "haven_vm" "app" {
  vcenter_id = haven_vcenter.prod.id
  name       = "app-01"
}

output "app_vm" {
  value = {
    instance_uuid = data.haven_vm.app.instance_uuid
    folder        = data.haven_vm.app.folder
    disk_gib      = [for d in data.haven_vm.app.disks : d.capacity_bytes / 1073741824]
  }
}
