# The Haven server host itself, for example with NAS shares mounted on it:
# its files are read without an agent, only under the directories the
# server was started with (haven server --local-roots /mnt/nas). Only admin
# tokens may declare it.
resource "haven_file_server" "this_host" {
  name     = "this-host"
  hostname = "localhost"
  os       = "linux"
  location = "server"
}

# A Windows file server that runs the haven agent. The agent dials out to
# the Haven server and activates with a one-time token that the
# haven_file_server_activation ephemeral resource issues (see its example):
# no token is ever kept in the Terraform state.
#
# group: group_admin tokens of team-finance may keep filesets on it and
# restore onto it. restore_roots: where restores may write besides the
# include paths of its filesets (the agent's own --restore-roots must allow
# them too).
resource "haven_file_server" "nas" {
  name          = "nas"
  hostname      = "nas01.corp.example.com"
  os            = "windows"
  location      = "agent"
  group         = "team-finance"
  restore_roots = ["D:\\Restores"]
}
