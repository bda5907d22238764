# A DR plan can be imported by its id or by its name.
terraform import haven_dr_plan.orders 3b1f0c2e-5d4a-4f6b-8e19-b2c3d4e5f607
terraform import haven_dr_plan.orders orders
