# The Haven server host itself, for example with NAS shares mounted on it:
# its files are read without an agent.
resource "haven_file_server" "this_host" {
  name     = "this-host"
  hostname = "localhost"
  os       = "linux"
  location = "server"
}

# A Windows file server that runs the haven agent. The agent dials out to
# the Haven server and activates with the one-time token below.
resource "haven_file_server" "nas" {
  name     = "nas"
  hostname = "nas01.corp.example.com"
  os       = "windows"
  location = "agent"
}

# The token is sensitive: `terraform output -raw nas_activation_token`
# prints it for the agent's installation.
output "nas_activation_token" {
  value     = haven_file_server.nas.activation_token
  sensitive = true
}
