# A vCenter can be imported by its id or by its name.
terraform import haven_vcenter.prod 2b9e4c71-0d3a-4f6e-8a15-c7d0e9b34f12
terraform import haven_vcenter.prod vcenter-prod

# The password is never read back. After importing, keep password and
# password_version in the configuration: the first apply sends the password
# again.
