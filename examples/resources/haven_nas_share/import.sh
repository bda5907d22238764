# A NAS share can be imported by its id or by its name.
terraform import haven_nas_share.finance 9a4e7c12-5b3d-4f80-a6e1-2d8c0b7f5e93
terraform import haven_nas_share.finance finance
