# Bring the orders plan home from AWS after a failover. Applied with
# final = false while production still runs in AWS, a first pass copies
# every instance's disks into a new VM on vCenter, powered off (db-01 as
# db-01-failback; app as orders-app). It reads everything and takes
# longest.
#
# In the maintenance window, set final = true and power_on = true and
# apply: that replaces the resource, which runs the final pass. It stops
# the instances, copies only what changed since the first pass, and
# starts the VMs. The instances are stopped, not terminated: destroying
# haven_dr_failover.orders (with terminate_on_destroy = true) removes them.
resource "haven_dr_failback" "orders" {
  run_id     = haven_dr_failover.orders.id
  vcenter_id = haven_vcenter.prod.id
  folder     = "/DC1/vm/failback"
  names      = { app = "orders-app" }

  final    = false
  power_on = false

  timeouts {
    create = "4h"
  }
}

output "orders_db_vm" {
  value = haven_dr_failback.orders.vms[0].vm_instance_uuid
}
