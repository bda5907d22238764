# A restore run outside Terraform (haven restore, or the API) can be
# imported by the id of its restore job, as haven restore prints it. The
# first plan then adopts the configuration's target and paths without
# restoring again; a different point_id restores again.
terraform import haven_restore.inspect 6f1d2c3b-8a4e-4f5d-9c7b-2e1a0d9f8b34
