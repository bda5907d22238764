# Look a file server up by name (or by id), for example to protect more of
# its files from another workspace.
data "haven_file_server" "nas" {
  name = "nas"
}

output "nas_agent" {
  value = {
    id           = data.haven_file_server.nas.id
    os           = data.haven_file_server.nas.os
    agent_status = data.haven_file_server.nas.agent_status
  }
}
