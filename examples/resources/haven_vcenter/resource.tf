# The password is write-only: Terraform sends it to the Haven server, which
# keeps it encrypted, and never stores it in the plan or the state. An
# ephemeral variable keeps it out of the plan file too.
variable "vcenter_password" {
  description = "Password of the vCenter account Haven logs in as."
  type        = string
  sensitive   = true
  ephemeral   = true
}

# Pin the vCenter's certificate by its SHA-256 thumbprint, as printed by
# `govc about.cert -thumbprint`.
resource "haven_vcenter" "prod" {
  name       = "vcenter-prod"
  url        = "https://vcenter.example.com/sdk"
  username   = "haven@vsphere.local"
  password   = var.vcenter_password
  thumbprint = "3F:1C:6E:2A:9B:04:D7:58:E1:22:7A:C9:5D:30:8F:B6:41:0E:97:2C:D5:68:AB:13:F4:7E:09:C2:5B:86:3D:E0"

  # Terraform cannot see changes of a write-only value: bump this number
  # whenever the password changes, and the next apply sends the new one.
  password_version = 1
}

# Or trust the certificate authority that signed the vCenter's certificate,
# given as PEM content such as file("vcenter-dr-ca.pem").
variable "vcenter_dr_ca_pem" {
  description = "PEM certificate of the CA that signed the DR vCenter's certificate."
  type        = string
}

resource "haven_vcenter" "dr" {
  name             = "vcenter-dr"
  url              = "https://vcenter-dr.example.com/sdk"
  username         = "haven@vsphere.local"
  password         = var.vcenter_password
  password_version = 1
  ca_pem           = var.vcenter_dr_ca_pem
}
