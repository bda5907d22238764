# A NAS device can be imported by its id or by its name.
terraform import haven_nas_device.filer 3f6b2d81-9c4e-4a57-8e12-b7d0c5a9f346
terraform import haven_nas_device.filer filer01

# The SMB password and keytab are never read back. After importing, keep
# smb_password (or smb_kerberos_keytab) and smb_credentials_version in the
# configuration: the first apply sends the secret again.
