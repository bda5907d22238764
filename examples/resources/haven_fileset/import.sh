# A fileset can be imported by its id or by its name.
terraform import haven_fileset.home 9a4e2c71-5b3d-4f08-8c6e-1d7f3b2a5e94
terraform import haven_fileset.home home
