# Look a database server up by name (or by id), for instance to restore
# onto it from another workspace. The password is never exposed.
data "haven_database_server" "orders" {
  name = "orders"
}

# What the agent found at the last backup: null until one ran.
output "orders_server" {
  value = {
    id           = data.haven_database_server.orders.id
    host         = data.haven_database_server.orders.host
    has_password = data.haven_database_server.orders.has_password
    data_dir     = try(data.haven_database_server.orders.detected.data_dir, null)
  }
}
