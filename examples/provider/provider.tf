terraform {
  required_version = ">= 1.11"
  required_providers {
    haven = {
      source = "havenbackup/haven"
    }
  }
}

# Every argument can instead come from the environment (HAVEN_ENDPOINT,
# HAVEN_TOKEN, HAVEN_CA_FILE, HAVEN_INSECURE_SKIP_VERIFY, HAVEN_MAX_RETRIES),
# which keeps the token out of the configuration: `provider "haven" {}`.
provider "haven" {
  endpoint = "https://haven.example.com:8470"
  token    = var.haven_token
  ca_file  = "/etc/haven/ca.pem"
}

variable "haven_token" {
  description = "Haven API token."
  type        = string
  sensitive   = true
}
