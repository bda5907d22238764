# An AWS target can be imported by its id or by its name.
terraform import haven_aws_target.ambient 7c0f5b1e-3d2a-4e6f-9b18-a4c5d6e7f809
terraform import haven_aws_target.ambient aws-dr

# The secret access key is never read back. After importing a target with an
# access key, keep secret_access_key and secret_access_key_version in the
# configuration: the first apply sends the secret again.
