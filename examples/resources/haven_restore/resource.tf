# The recovery point to restore, as `haven points list home` shows it.
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

# Destroying these resources leaves the restored files alone.
