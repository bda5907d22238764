# A database server can be imported by its id or by its name.
terraform import haven_database_server.orders 8d2f6a13-4c7e-4b90-a5d1-3e9f7c0b2a64
terraform import haven_database_server.orders orders

# The password is never read back. After importing, keep password and
# password_version in the configuration: the first apply sends the password
# again.
