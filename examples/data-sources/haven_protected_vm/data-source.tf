# Find the protection of a VM, whether a haven_protected_vm or a
# haven_vm_protection_rule made it: by the VM's name as the server last saw
# it, or by its instance UUID, which survives renames.
data "haven_protected_vm" "db" {
  vcenter_id = data.haven_vcenter.prod.id
  name       = "db-01"
}

# Its id is the asset id that recovery points and jobs name.
data "haven_recovery_points" "db_recent" {
  asset_id = data.haven_protected_vm.db.id
  limit    = 5
}

output "db_protection" {
  value = {
    status       = data.haven_protected_vm.db.status
    rule_id      = data.haven_protected_vm.db.rule_id
    recent_point = [for p in data.haven_recovery_points.db_recent.points : p.id]
  }
}
