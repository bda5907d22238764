# A Linux host that runs the haven agent as a systemd service, whose unit
# reads HAVEN_ACTIVATION_TOKEN from /etc/haven-agent/activation.env.
resource "haven_file_server" "web" {
  name     = "web01"
  hostname = "web01.corp.example.com"
  os       = "linux"
  location = "agent"
}

# A one-time activation token for its agent. It is ephemeral: Terraform
# never writes it to the plan or the state. Every plan and apply gets the
# same token until the agent activates with it or it expires (24 hours),
# so the token the apply hands to the host below stays valid.
ephemeral "haven_file_server_activation" "web" {
  file_server_id = haven_file_server.web.id
}

# The SSH key, as an ephemeral variable: it stays out of the plan too.
variable "web01_ssh_private_key" {
  description = "Private key of the admin account on web01."
  type        = string
  sensitive   = true
  ephemeral   = true
}

# Provisioner and connection blocks are among the places Terraform accepts
# ephemeral values. The provisioner runs when the file server is created
# (or replaced): it writes the token where the service reads it, and starts
# the agent, which trades the token for its own credential at once.
resource "terraform_data" "web01_agent" {
  triggers_replace = [haven_file_server.web.id]

  connection {
    type        = "ssh"
    host        = haven_file_server.web.hostname
    user        = "admin"
    private_key = var.web01_ssh_private_key
  }

  provisioner "remote-exec" {
    inline = [
      "sudo install -d -m 0700 /etc/haven-agent",
      "echo 'HAVEN_ACTIVATION_TOKEN=${ephemeral.haven_file_server_activation.web.activation_token}' | sudo tee /etc/haven-agent/activation.env >/dev/null",
      "sudo chmod 0600 /etc/haven-agent/activation.env",
      "sudo systemctl restart haven-agent",
    ]
  }
}
