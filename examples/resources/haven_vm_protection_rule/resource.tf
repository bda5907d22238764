# Every VM in the production folder, or below it, including VMs created
# later, except test and scratch machines.
resource "haven_vm_protection_rule" "prod" {
  name               = "prod-vms"
  vcenter_id         = haven_vcenter.prod.id
  folders            = ["/DC1/vm/prod"]
  exclude_name_regex = "-(test|tmp)$"
  policy_id          = haven_backup_policy.gold.id
  storage_id         = haven_storage.local.id
}

# Database VMs tagged for the gold policy, kept offsite. Selectors combine
# with AND: a VM must carry one of the tags and have a matching name. One
# VM is left out by instance UUID; tokens with the group_admin role for
# "databases" may manage the rule.
resource "haven_vm_protection_rule" "gold_databases" {
  name                   = "gold-databases"
  vcenter_id             = haven_vcenter.prod.id
  tags                   = ["backup:gold", "backup:platinum"]
  name_regex             = "^db-"
  exclude_instance_uuids = ["502e71fa-1a5a-e3b6-4a0b-1d2f3c4b5a69"]
  policy_id              = haven_backup_policy.gold.id
  storage_id             = haven_storage.offsite.id
  group                  = "databases"
}
