# Look a database set up by name (or by id): its id is the asset id that
# haven_recovery_point and `haven points list` take.
data "haven_database_set" "orders" {
  name = "orders"
}

output "orders_set_verified" {
  value = data.haven_database_set.orders.verify_restore
}
