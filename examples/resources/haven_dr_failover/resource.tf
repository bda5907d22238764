# Fail the orders plan over to AWS: its VMs are launched as production
# instances where the plan says, the database first. Apply waits until
# every machine answers on its probe port. Declare this only when the
# failover is wanted, for example in a separate configuration kept for
# disasters.
resource "haven_dr_failover" "orders" {
  plan_id          = haven_dr_plan.orders.id
  confirm_failover = true

  # Once the site is failed back, destroying this resource terminates the
  # instances. Without it, destroy only forgets the failover and the
  # instances keep running.
  terminate_on_destroy = true

  timeouts {
    create = "2h"
  }
}

output "orders_db_instance" {
  value = haven_dr_failover.orders.machines[0].instance_id
}
