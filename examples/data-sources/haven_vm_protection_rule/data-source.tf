# Look a VM protection rule up by name (or by id), for instance to report
# how many VMs it protects.
data "haven_vm_protection_rule" "prod" {
  name = "prod-vms"
}

output "prod_rule_selects" {
  value = data.haven_vm_protection_rule.prod.selected_count
}
