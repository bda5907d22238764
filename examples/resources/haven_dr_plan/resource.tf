# Two tiers of an application and the VMs a protection rule selects,
# copied into the AWS target every 30 minutes (when a newer recovery point
# exists), with the order a failover or a DR test (haven_dr_failover,
# haven_dr_test) launches them in: the database first, then the
# application server once the database answers on its port, then the rest.
resource "haven_dr_plan" "orders" {
  name                         = "orders"
  target_id                    = haven_aws_target.ambient.id
  replication_interval_minutes = 30

  vms = [
    {
      protected_vm_id = haven_protected_vm.db.id
      # The machine's name in the plan defaults to the VM's name (db-01).
      instance_type = "r6i.large"
      subnet_id     = "subnet-0f1e2d3c4b5a69788"
      private_ip    = "10.20.1.10"
      boot_group    = 0
      probe_port    = 22
      tags          = { tier = "database" }
    },
    {
      protected_vm_id = haven_protected_vm.app.id
      name            = "app"
      # auto picks the smallest general purpose type that holds the VM's
      # CPUs and memory; the plan's status records the pick and why.
      instance_type = "auto"
      boot_group    = 1
      depends_on    = ["db-01"]
      # Runs at boot on EC2, here to point the application's DNS name at
      # the recovered instance.
      user_data = <<-EOT
        #!/bin/sh
        /usr/local/bin/update-dns orders.example.com
      EOT
    },
    {
      # Every other VM the prod-vms rule protects, now or later, each
      # launched under its VM name with these settings once the application
      # server is up. VMs listed above keep their own entries.
      protection_rule_id = haven_vm_protection_rule.prod.id
      boot_group         = 2
      depends_on         = ["app"]
    },
  ]

  # DR tests run here, never in the production subnets.
  test_network = {
    vpc_id    = "vpc-0a1b2c3d4e5f60718"
    subnet_id = "subnet-0a0b0c0d0e0f01234"
  }
}
