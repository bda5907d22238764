# Where a DR plan's copies stand: for each VM, the recovery point its EBS
# snapshots hold, the replication lag, and whether the copy is late.
data "haven_dr_plan" "orders" {
  name = "orders"
}

output "orders_dr" {
  value = {
    late_vms         = [for vm in data.haven_dr_plan.orders.status : vm.name if vm.late]
    last_replication = data.haven_dr_plan.orders.last_replication_state
  }
}
