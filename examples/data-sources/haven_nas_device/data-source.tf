# Look a NAS device up by name (or by id), for instance to declare NAS
# shares of it from another workspace. Its SMB secret is never exposed.
data "haven_nas_device" "filer" {
  name = "filer01"
}

output "filer" {
  value = {
    id               = data.haven_nas_device.filer.id
    protocols        = data.haven_nas_device.filer.protocols
    has_smb_password = data.haven_nas_device.filer.has_smb_password
  }
}
