# A DR test run started outside Terraform (haven dr-plans test, or the API)
# can be imported by its run id, as haven dr-runs list shows it. The first
# plan then adopts the configuration's keep_minutes and
# ready_timeout_minutes, which the server does not record.
terraform import haven_dr_test.orders_inspect 7c2e4a1b-9d3f-4e6a-8b5c-1f0e2d3c4b5a
