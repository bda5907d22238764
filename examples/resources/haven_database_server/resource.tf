# The database's host runs the haven agent, declared as a file server of
# location agent (see haven_file_server_activation for its enrolment): the
# agent connects to PostgreSQL there, backs it up and restores it.
resource "haven_file_server" "db01" {
  name     = "db01"
  hostname = "db01.corp.example.com"
  os       = "linux"
  location = "agent"
}

# The password is write-only: Terraform sends it to the Haven server, which
# keeps it encrypted and hands it only to the host's agent, and never
# stores it in the plan or the state. An ephemeral variable keeps it out of
# the plan file too.
variable "orders_db_password" {
  description = "Password of the PostgreSQL role Haven connects as."
  type        = string
  sensitive   = true
  ephemeral   = true
}

# A cluster reached over TCP on the host itself, as a role with the
# REPLICATION attribute. The cluster needs archive_mode = on and
# archive_command = 'haven agent wal-push --state-dir /var/lib/haven-agent %p' for
# log backups (--state-dir is the agent's own; see the databases guide).
resource "haven_database_server" "orders" {
  name           = "orders"
  file_server_id = haven_file_server.db01.id
  host           = "localhost"
  port           = 5432
  user           = "haven_backup"
  password       = var.orders_db_password

  # Terraform cannot see changes of a write-only value: bump this number
  # whenever the password changes, and the next apply sends the new one.
  password_version = 1

  # Tokens with the group_admin role for "databases" may keep database sets
  # on this server and restore onto it.
  group = "databases"
}

# A cluster reached through its Unix socket with the host's own
# authentication (peer): no password.
resource "haven_database_server" "reports" {
  name           = "reports"
  file_server_id = haven_file_server.db01.id
  host           = "/var/run/postgresql"
  port           = 5433
  user           = "postgres"
}
