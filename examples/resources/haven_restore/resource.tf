# The recovery point to restore, as `haven points list` shows it. The file
# restores below take a point of a fileset (haven_fileset.home), the VM
# restores a point of a protected VM (haven_protected_vm.app), the database
# restores a point of a database set (haven_database_set.orders).
variable "point_id" {
  description = "Id of the recovery point to restore."
  type        = string
}

# Restore a whole point into a scratch directory, for inspection: the
# backed-up /home/alice/report.odt comes back as
# /srv/restore/home/alice/report.odt. Apply waits until the restore is done,
# for at most two hours.
resource "haven_restore" "inspect" {
  point_id    = var.point_id
  target_path = "/srv/restore"

  timeouts {
    create = "2h"
  }
}

# Put one directory back where it was, keeping what is there: a restored
# file that would replace an existing one is written next to it as
# <name>.restored-1. Apply returns as soon as the server has queued the
# restore.
resource "haven_restore" "alice" {
  point_id = var.point_id
  paths    = ["/home/alice"]
  conflict = "rename"
  wait     = false
}

# Restore a VM as a new VM next to the original, on an isolated network,
# to try the backup out without disturbing the original. It stays powered
# off unless power_on is set.
resource "haven_restore" "app_copy" {
  point_id = var.point_id

  vm {
    name        = "app-01-restored"
    folder      = "/DC0/vm/restored"
    datastore   = "LocalDS_0"
    network_map = { "VM Network" = "Isolated" }
  }

  timeouts {
    create = "2h"
  }
}

# The new VM's identity, for instance to protect it in turn with a
# haven_protected_vm.
output "app_copy_instance_uuid" {
  value = haven_restore.app_copy.restored_vm_instance_uuid
}

# Roll the original VM back to the point: its disks are overwritten. The
# server refuses while the VM is powered on.
resource "haven_restore" "app_rollback" {
  point_id = var.point_id

  vm {
    mode      = "original"
    overwrite = true
  }
}

# Attach one disk of the point (by device key, as the haven_vm data source
# lists the disks) to another VM as an extra disk, to copy files out of it.
resource "haven_restore" "app_data_disk" {
  point_id = var.point_id

  vm {
    mode                 = "disk"
    disk_key             = 2001
    target_instance_uuid = "502e71fa-1a5a-e3b6-4a0b-1d2f3c4b5a69" # data.haven_vm.helper.instance_uuid
  }
}

# Restore the orders cluster as it was just before an incident, into a new
# data directory on its host, with its own port so it can start beside the
# original: the point's logs, and those of the log points after it, are
# replayed up to that instant. The haven_recovery_point data source's
# covers_time finds the point to give.
resource "haven_restore" "orders_before_incident" {
  point_id = var.point_id

  database {
    data_dir      = "/var/lib/postgresql/16/before-incident"
    port          = 5433
    point_in_time = "2026-03-01T17:59:00Z"
  }
}

# Roll the orders cluster itself back to a named restore point (made with
# pg_create_restore_point before a migration): its connections are
# terminated and its data directory replaced, which overwrite must allow.
resource "haven_restore" "orders_rollback" {
  point_id = var.point_id

  database {
    restore_point = "before_migration"
    overwrite     = true
  }

  timeouts {
    create = "4h"
  }
}

# Prove that a full or differential point restores, starts and reads: the
# agent restores it into a scratch cluster on the host, runs pg_amcheck and
# counts every table's rows, then removes it. The result is recorded on the
# point (the haven_recovery_point data source's database.verified).
resource "haven_restore" "orders_check" {
  point_id = var.point_id

  database {
    verify = true
  }
}

# Destroying these resources leaves the restored files, VMs and data
# directories alone.
