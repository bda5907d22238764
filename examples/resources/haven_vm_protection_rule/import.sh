# A VM protection rule can be imported by its id or by its name.
terraform import haven_vm_protection_rule.prod 8e3b1f6c-4d2a-4a97-b0c5-6f9e2d1a7c43
terraform import haven_vm_protection_rule.prod prod-vms
