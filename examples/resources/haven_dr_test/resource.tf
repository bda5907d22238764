# A DR drill of the orders plan: its VMs are launched from their copies in
# AWS in the plan's test network (never in production), checked, and
# removed again as soon as the drill ends. Apply fails, and the next apply
# drills again, if a machine does not come up. To drill again later:
#   terraform apply -replace=haven_dr_test.orders_drill
resource "haven_dr_test" "orders_drill" {
  plan_id = haven_dr_plan.orders.id

  timeouts {
    create = "90m"
  }
}

output "orders_rto_seconds" {
  value = haven_dr_test.orders_drill.rto_seconds
}

# A drill from an older recovery point of db-01, whose instances keep
# running for two hours so the application team can log in and check the
# data; destroying the resource removes them sooner.
resource "haven_dr_test" "orders_inspect" {
  plan_id      = haven_dr_plan.orders.id
  points       = { "db-01" = "0b7c3e9a-2f41-4d8e-b6a5-7c1d9e3f5a20" } # data.haven_recovery_point.before.id
  keep_minutes = 120
}

output "orders_inspect_db_address" {
  value = haven_dr_test.orders_inspect.machines[0].private_ip
}
