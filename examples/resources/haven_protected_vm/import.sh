# A protected VM can be imported by its id, or by "<vcenter id>/<instance uuid>".
terraform import haven_protected_vm.db 5d0f8a3e-7b21-4c69-9e04-2a6b1c8d7f35
terraform import haven_protected_vm.db 2b9e4c71-0d3a-4f6e-8a15-c7d0e9b34f12/502e71fa-1a5a-e3b6-4a0b-1d2f3c4b5a69

# A protection that a haven_vm_protection_rule created can be imported too;
# the first change applied to it takes it over from the rule. The guest
# password is never read back: keep guest_password and guest_password_version
# in the configuration, and the first apply sends the password again.
