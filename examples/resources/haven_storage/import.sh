# A storage can be imported by its id or by its name.
terraform import haven_storage.offsite 6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a
terraform import haven_storage.offsite offsite

# The secret access key is never read back. After importing an s3 storage with
# credentials, keep secret_access_key and secret_access_key_version in the
# configuration: the first apply sends the secret again.
