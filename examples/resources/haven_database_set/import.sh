# A database set can be imported by its id or by its name.
terraform import haven_database_set.orders 5e1a9c47-2d8b-4f36-b0e2-7c4d1f9a3b58
terraform import haven_database_set.orders orders
