package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestAccAgentPathEndToEnd declares an agent file server and its fileset
// with Terraform, starts haven agent with the activation token that
// haven_file_server_activation issued and a provisioner delivered, backs up through the agent, and restores the point through the
// agent with haven_restore: the restored bytes and modes are the source's.
func TestAccAgentPathEndToEnd(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.AgentOfflineAfter = 5 * time.Second })
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := writeSourceTree(t, src)
	target := filepath.Join(dir, "restored")
	tokenFile := filepath.Join(dir, "activation")

	base := providerConfig(srv) + protectionConfig(filepath.Join(dir, "store")) + `
resource "haven_file_server" "remote" {
  name     = "remote"
  hostname = "remote.example.com"
  os       = "linux"
  location = "agent"
  restore_roots = [` + fmt.Sprintf("%q", target) + `]
}

resource "haven_fileset" "remote" {
  name           = "remote-docs"
  file_server_id = haven_file_server.remote.id
  include_paths  = [` + fmt.Sprintf("%q", src) + `]
  policy_id      = haven_backup_policy.test.id
  storage_id     = haven_storage.test.id
}
` + deliverActivation("remote", "haven_file_server.remote.id", "", tokenFile)
	var pointID string
	startAgentAndBackUp := func(s *terraform.State) error {
		status, token, err := delivered(tokenFile)
		if err != nil {
			return err
		}
		if status != "pending" {
			return fmt.Errorf("the provisioner got agent_status %q, want pending", status)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- agent.Run(ctx, agent.Config{Server: srv.URL, ActivationToken: token, StateDir: t.TempDir(), PollWait: time.Second, RestoreRoots: []string{target}})
		}()
		t.Cleanup(func() { stop(); <-done })

		wctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		set, err := srv.Client.Filesets().Get(wctx, "remote-docs")
		if err != nil {
			return err
		}
		j, err := srv.Client.BackupNow(wctx, set.ID)
		if err != nil {
			return err
		}
		if j, err = srv.Client.WaitJob(wctx, j.ID, 100*time.Millisecond); err != nil {
			return err
		}
		if j.State != api.JobSucceeded || j.PointID == "" {
			return fmt.Errorf("backup through the agent ended %s: %s", j.State, j.Error)
		}
		pointID = j.PointID
		return nil
	}
	modesSame := func(*terraform.State) error {
		for rel := range files {
			a, err := os.Stat(filepath.Join(src, rel))
			if err != nil {
				return err
			}
			b, err := os.Stat(filepath.Join(target, src, rel))
			if err != nil {
				return err
			}
			if a.Mode() != b.Mode() || !a.ModTime().Equal(b.ModTime()) {
				return fmt.Errorf("%s: mode %v mtime %v, restored %v %v", rel, a.Mode(), a.ModTime(), b.Mode(), b.ModTime())
			}
		}
		return nil
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: base, Check: startAgentAndBackUp},
			{
				Config: base + `
variable "point_id" {
  type = string
}

resource "haven_restore" "through_agent" {
  point_id              = var.point_id
  target_file_server_id = haven_file_server.remote.id
  target_path           = ` + fmt.Sprintf("%q", target) + `
}
`,
				ConfigVariables: config.Variables{"point_id": lazyString{&pointID}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("haven_restore.through_agent", "state", api.JobSucceeded),
					checkRestoredTree(target, src, files, func(string) bool { return true }),
					modesSame,
				),
			},
		},
	})
}
