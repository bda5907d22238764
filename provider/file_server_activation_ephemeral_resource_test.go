package provider

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// deliverActivation declares haven_file_server_activation.<label> and a
// terraform_data whose local-exec provisioner, one of the few places
// Terraform takes ephemeral values, writes what it got to file, as a
// provisioner would hand it to a host.
func deliverActivation(label, fileServer, extra, file string) string {
	return fmt.Sprintf(`
ephemeral "haven_file_server_activation" %[1]q {
  file_server_id = %[2]s
%[3]s
}

resource "terraform_data" %[1]q {
  provisioner "local-exec" {
    command = "umask 077 && printf '%%s %%s' \"$STATUS\" \"$TOKEN\" > %[4]s"
    environment = {
      STATUS = ephemeral.haven_file_server_activation.%[1]s.agent_status
      TOKEN  = coalesce(ephemeral.haven_file_server_activation.%[1]s.activation_token, "none")
    }
  }
}
`, label, fileServer, extra, file)
}

// delivered reads what deliverActivation's provisioner wrote: the agent
// status and the token ("none" for a null token).
func delivered(file string) (status, token string, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", "", err
	}
	status, token, _ = strings.Cut(string(b), " ")
	return status, token, nil
}

func TestAccFileServerActivationEphemeralResource(t *testing.T) {
	srv := startParallel(t)
	dir := t.TempDir()
	first, second, after, again := filepath.Join(dir, "first"), filepath.Join(dir, "second"), filepath.Join(dir, "after"), filepath.Join(dir, "again")
	base := providerConfig(srv) + fileServerConfig("agent", "nas", "nas01.example.com", "linux", "agent") +
		fileServerConfig("local", "this-host", "localhost", "linux", "server")
	step1 := base + deliverActivation("first", "haven_file_server.agent.id", "", first)
	step2 := step1 + deliverActivation("second", "haven_file_server.agent.name", "", second)
	step3 := step2 + deliverActivation("after", "haven_file_server.agent.id", "", after)
	step4 := step3 + deliverActivation("again", "haven_file_server.agent.id", "reenrol = true", again)

	var credential, token string
	deliveredToken := func(file, wantStatus string) (string, error) {
		status, tok, err := delivered(file)
		if err != nil {
			return "", err
		}
		if status != wantStatus || len(tok) < 20 {
			return "", fmt.Errorf("provisioner got agent_status %q and token %q, want %s and a token", status, tok, wantStatus)
		}
		return tok, nil
	}
	activateWith := func(s *terraform.State, tok string) error {
		if err := checkSecretNotInState(tok)(s); err != nil {
			return err
		}
		var a api.Activation
		if err := srv.Client.Do(context.Background(), http.MethodPost, "/v1/agents/activate", nil,
			api.ActivateRequest{ActivationToken: tok, Hostname: "nas01"}, &a); err != nil {
			return fmt.Errorf("activating with the token Terraform issued: %w", err)
		}
		credential, token = a.Token, tok
		return nil
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_10_0)},
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + `
ephemeral "haven_file_server_activation" "local" {
  file_server_id = haven_file_server.local.id
}
`,
				ExpectError: errorLike("File server has no agent", `File server this-host is of location "server"`),
			},
			{
				Config: step1,
				Check: func(s *terraform.State) error {
					tok, err := deliveredToken(first, "pending")
					if err == nil {
						err = checkSecretNotInState(tok)(s)
					}
					return err
				},
			},
			{
				// Every plan and apply since (this step's and the last
				// one's plan after its apply) opened the ephemeral resource
				// again: each got the token the first apply handed over,
				// which still activates the agent.
				Config: step2,
				Check: func(s *terraform.State) error {
					handed, err := deliveredToken(first, "pending")
					if err != nil {
						return err
					}
					now, err := deliveredToken(second, "pending")
					if err != nil {
						return err
					}
					if now != handed {
						return fmt.Errorf("a later run got another token than the one an earlier apply handed to the host")
					}
					return activateWith(s, handed)
				},
			},
			{
				// Once the agent has activated, no token is issued: none
				// is left valid for someone else to enrol with.
				Config: step3,
				Check: func(*terraform.State) error {
					status, tok, err := delivered(after)
					if err != nil {
						return err
					}
					if status != "online" || tok != "none" {
						return fmt.Errorf("after activation the provisioner got agent_status %q and token %q, want online and none", status, tok)
					}
					return nil
				},
			},
			{
				// reenrol issues one anyway, for a rebuilt host; the
				// enrolled agent's credential stops working when it is used.
				Config: step4,
				Check: func(s *terraform.State) error {
					old, oldToken := credential, token
					tok, err := deliveredToken(again, "online")
					if err != nil {
						return err
					}
					if err := activateWith(s, tok); err != nil {
						return err
					}
					if token == oldToken {
						return fmt.Errorf("reenrol delivered the token used before")
					}
					err = srv.Client.WithToken(old).Do(context.Background(), http.MethodPost, "/v1/agent/heartbeat", nil, nil, nil)
					if err == nil {
						return fmt.Errorf("the replaced agent's credential still works")
					}
					return nil
				},
			},
		},
	})
}
