# A backup policy can be imported by its id or by its name.
terraform import haven_backup_policy.gold 2d7e5a3c-1b4f-4c8e-8f0a-6e9d2c7b5a41
terraform import haven_backup_policy.gold gold
