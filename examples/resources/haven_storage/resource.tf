# A directory on the Haven server.
resource "haven_storage" "local" {
  name = "local-disk"
  kind = "filesystem"
  path = "/var/lib/haven/store"
}

# An S3 bucket, with an archive class for the cold tier. The secret access
# key is write-only: Terraform sends it to the Haven server, which keeps it
# encrypted, and never stores it in the plan or the state. An ephemeral
# variable keeps it out of the plan file too.
variable "s3_secret_access_key" {
  description = "Secret access key of the offsite bucket's IAM user."
  type        = string
  sensitive   = true
  ephemeral   = true
}

resource "haven_storage" "offsite" {
  name               = "offsite"
  kind               = "s3"
  bucket             = "acme-backups"
  prefix             = "haven"
  region             = "eu-west-1"
  access_key_id      = "AKIAIOSFODNN7EXAMPLE"
  secret_access_key  = var.s3_secret_access_key
  cold_storage_class = "DEEP_ARCHIVE"

  # Terraform cannot see changes of a write-only value: bump this number
  # whenever the secret changes, and the next apply sends the new one.
  secret_access_key_version = 1
}

# An S3-compatible service (MinIO, Ceph, ...) using the server's ambient
# credentials (environment or instance profile).
resource "haven_storage" "minio" {
  name             = "minio"
  kind             = "s3"
  bucket           = "backups"
  endpoint         = "https://minio.example.internal:9000"
  force_path_style = true
}
