# A file server can be imported by its id or by its name.
terraform import haven_file_server.nas 3c0b8f2e-7a41-4d5c-9e16-2b8d4f6a1c07
terraform import haven_file_server.nas nas

