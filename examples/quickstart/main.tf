# A complete, small Haven configuration: a storage, a backup policy, a
# fileset protecting a directory on the Haven server host and, when a
# vCenter is given, a protected VM and a selection rule.
#
#   export HAVEN_ENDPOINT=http://127.0.0.1:8470
#   export HAVEN_TOKEN=$(cat <data-dir>/admin.token)
#   export TF_VAR_storage_path=/var/lib/haven/store
#   export TF_VAR_sample_path=/srv/data
#   terraform init && terraform apply
#
# Against `haven server --dev`, which simulates a vCenter, also:
#
#   . <data-dir>/dev.env
#   export TF_VAR_vcenter_url=$HAVEN_DEV_VCENTER_URL TF_VAR_vcenter_thumbprint=$HAVEN_DEV_VCENTER_THUMBPRINT
#   export TF_VAR_vcenter_username=$HAVEN_DEV_VCENTER_USER TF_VAR_vcenter_password=$HAVEN_DEV_VCENTER_PASSWORD
#
# `make demo` does all of this against a fresh dev server.

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

variable "storage_force_destroy" {
  description = "Let terraform destroy delete the storage with the recovery points it still holds."
  type        = bool
  default     = false
}

# Recovery points outlive the fileset and VMs that made them: they stay
# restorable until their retention ends. So `terraform destroy` removes
# everything else but refuses to delete a storage that still holds points,
# and says how many. Apply with storage_force_destroy = true first to let
# the destroy expire them and delete their data.
resource "haven_storage" "local" {
  name          = "quickstart"
  kind          = "filesystem"
  path          = var.storage_path
  force_destroy = var.storage_force_destroy
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

# VMware, when a vCenter is given (count = 0 otherwise).
variable "vcenter_url" {
  description = "SDK URL of a vCenter to protect VMs of, such as https://vcenter.example.com/sdk; empty leaves VMware out."
  type        = string
  default     = ""
}

variable "vcenter_username" {
  description = "vCenter account Haven logs in as."
  type        = string
  default     = ""
}

variable "vcenter_password" {
  description = "Password of that account; write-only, never in the plan or the state."
  type        = string
  default     = ""
  sensitive   = true
  ephemeral   = true
}

variable "vcenter_thumbprint" {
  description = "SHA-256 thumbprint of the vCenter's certificate."
  type        = string
  default     = ""
}

variable "vm_name" {
  description = "The VM to protect by hand."
  type        = string
  default     = "web-01"
}

locals {
  vmware = var.vcenter_url == "" ? 0 : 1
}

resource "haven_vcenter" "lab" {
  count            = local.vmware
  name             = "lab"
  url              = var.vcenter_url
  username         = var.vcenter_username
  password         = var.vcenter_password
  password_version = 1
  thumbprint       = var.vcenter_thumbprint
}

data "haven_vm" "protected" {
  count      = local.vmware
  vcenter_id = haven_vcenter.lab[0].id
  name       = var.vm_name
}

# One VM protected by hand, named by its instance UUID.
resource "haven_protected_vm" "vm" {
  count         = local.vmware
  vcenter_id    = haven_vcenter.lab[0].id
  instance_uuid = data.haven_vm.protected[0].instance_uuid
  policy_id     = haven_backup_policy.daily.id
  storage_id    = haven_storage.local.id
}

# Every other VM tagged backup:gold, as it comes and goes.
resource "haven_vm_protection_rule" "gold" {
  count              = local.vmware
  name               = "gold"
  vcenter_id         = haven_vcenter.lab[0].id
  tags               = ["backup:gold"]
  exclude_name_regex = "^${var.vm_name}$"
  policy_id          = haven_backup_policy.daily.id
  storage_id         = haven_storage.local.id
}

output "protected_vm_id" {
  value = one(haven_protected_vm.vm[*].id)
}
