# A complete, small Haven configuration: a storage, a backup policy, and a
# fileset protecting a directory on the Haven server host.
#
#   export HAVEN_ENDPOINT=http://127.0.0.1:8470
#   export HAVEN_TOKEN=$(cat <data-dir>/admin.token)
#   export TF_VAR_storage_path=/var/lib/haven/store
#   export TF_VAR_sample_path=/srv/data
#   terraform init && terraform apply
#
# `make demo` does all of this against a fresh server.

terraform {
  required_version = ">= 1.11"
  required_providers {
    haven = {
      source = "havenbackup/haven"
    }
  }
}

# endpoint and token come from HAVEN_ENDPOINT and HAVEN_TOKEN.
provider "haven" {}

variable "storage_path" {
  description = "Absolute directory on the Haven server where backup data is kept."
  type        = string
}

resource "haven_storage" "local" {
  name = "local"
  kind = "filesystem"
  path = var.storage_path
}

resource "haven_backup_policy" "daily" {
  name        = "daily"
  description = "Weekly full, daily incrementals, a year of history"
  timezone    = "UTC"

  full {
    days_of_week = ["sun"]
    at           = "02:00"
  }

  incremental {
    days_of_week = ["mon", "tue", "wed", "thu", "fri", "sat"]
    at           = "02:00"
  }

  retention {
    daily_days     = 14
    weekly_weeks   = 8
    monthly_months = 12
  }
}

variable "sample_path" {
  description = "Absolute directory on the Haven server host to protect."
  type        = string
}

# The Haven server host itself, protected without an agent.
resource "haven_file_server" "this_host" {
  name     = "this-host"
  hostname = "localhost"
  os       = "linux"
  location = "server"
}

resource "haven_fileset" "sample" {
  name           = "sample"
  file_server_id = haven_file_server.this_host.id
  include_paths  = [var.sample_path]
  exclude_globs  = ["*.tmp"]
  policy_id      = haven_backup_policy.daily.id
  storage_id     = haven_storage.local.id
}

output "fileset_id" {
  value = haven_fileset.sample.id
}

output "storage_id" {
  value = haven_storage.local.id
}

output "policy_id" {
  value = haven_backup_policy.daily.id
}
