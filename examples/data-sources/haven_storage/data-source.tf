# Look a storage up by name (or by id) to use one managed elsewhere.
data "haven_storage" "local" {
  name = "local-disk"
}

output "local_storage" {
  value = {
    id   = data.haven_storage.local.id
    kind = data.haven_storage.local.kind
    path = data.haven_storage.local.path
  }
}
