# A failover started outside Terraform (haven dr-plans failover, or the
# API) can be imported by its run id, as haven dr-runs list shows it.
terraform import haven_dr_failover.orders 5e8d1c2b-3a4f-4b6c-9d7e-0a1b2c3d4e5f
