# Credentials of the Haven server host itself: its instance or container
# role, its environment, or its shared AWS configuration files.
resource "haven_aws_target" "ambient" {
  name        = "aws-dr"
  region      = "eu-west-3"
  credentials = "ambient"

  # Where recovered machines go unless a DR plan says otherwise. The
  # subnet and the security groups must belong to the VPC.
  vpc_id             = "vpc-0a1b2c3d4e5f60718"
  subnet_id          = "subnet-0f1e2d3c4b5a69788"
  security_group_ids = ["sg-0123456789abcdef0"]
}

# A role in the recovery account, assumed from an access key of another
# account. The secret access key is write-only: Terraform sends it to the
# Haven server, which keeps it encrypted, and never stores it in the plan
# or the state. An ephemeral variable keeps it out of the plan file too.
variable "aws_secret_access_key" {
  description = "Secret access key of the IAM user Haven assumes the recovery role from."
  type        = string
  sensitive   = true
  ephemeral   = true
}

resource "haven_aws_target" "recovery_account" {
  name              = "aws-recovery-account"
  region            = "us-east-1"
  credentials       = "assume_role"
  role_arn          = "arn:aws:iam::210987654321:role/haven-dr"
  external_id       = "haven-prod"
  access_key_id     = "AKIAIOSFODNN7EXAMPLE"
  secret_access_key = var.aws_secret_access_key

  # Terraform cannot see changes of a write-only value: bump this number
  # whenever the secret changes, and the next apply sends the new one.
  secret_access_key_version = 1
}
