package provider

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// writeShareTree fills dir (a share's directory) with files of varied
// sizes and content in a few directories, one nested three deep, and
// returns their contents by slash-separated path relative to dir.
func writeShareTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(16, 3))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"readme.txt":               []byte("Haven NAS end-to-end test\n"),
		"empty.dat":                {},
		"docs/report.md":           bytes.Repeat([]byte("a line of the quarterly report\n"), 1500),
		"docs/summary.txt":         []byte("one short summary"),
		"docs/2025/q4/ledger.csv":  bytes.Repeat([]byte("2025-12-31,acme,1234.56\n"), 4000),
		"docs/2025/q4/archive.bin": random(2<<20 + 4321),
		"media/photo.raw":          random(700_001),
		"media/thumb.png":          random(4097),
		"config/app.json":          []byte(`{"name":"haven","retries":3}` + "\n"),
		"config/keys/one-byte.key": {0x7f},
	}
	for rel, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// checkShareTree compares the regular files below dir with files: the
// same paths, none missing and none more, and the same bytes.
func checkShareTree(dir string, files map[string][]byte) resource.TestCheckFunc {
	return func(*terraform.State) error {
		seen := map[string]bool{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			want, ok := files[rel]
			if !ok {
				return fmt.Errorf("%s was restored but was not in the backed-up share", p)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("%s: restored %d bytes differ from the %d bytes backed up", p, len(got), len(want))
			}
			seen[rel] = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("restored share tree: %w", err)
		}
		for rel := range files {
			if !seen[rel] {
				return fmt.Errorf("%s was not restored under %s", rel, dir)
			}
		}
		return nil
	}
}

// TestAccNASEndToEnd declares a NAS device on a real Samba server, its
// shares and the agent that proxies them with Terraform, starts haven
// agent with the activation token that haven_file_server_activation issued
// and a provisioner delivered, backs up one share through that proxy, and
// restores the point into a directory of the other share with
// haven_restore's nas block: the restored files are the backed-up ones,
// byte for byte, and the SMB password is never in the state.
func TestAccNASEndToEnd(t *testing.T) {
	samba := testparts.StartSamba(t)
	dataDir, otherDir := samba.Dir(testparts.SambaShareData), samba.Dir(testparts.SambaShareOther)
	files := writeShareTree(t, dataDir)
	samba.Adopt(testparts.SambaShareData)
	var total int64
	for _, data := range files {
		total += int64(len(data))
	}

	srv := servertest.StartWith(t, func(c *server.Config) { c.AgentOfflineAfter = 5 * time.Second })
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "activation")

	base := providerConfig(srv) + protectionConfig(filepath.Join(dir, "store")) + fmt.Sprintf(`
resource "haven_file_server" "nas_proxy" {
  name     = "nas-proxy"
  hostname = "nas-proxy.example.com"
  os       = "linux"
  location = "agent"
}

variable "smb_password" {
  type      = string
  sensitive = true
  ephemeral = true
}

resource "haven_nas_device" "samba" {
  name                  = "samba"
  host                  = %q
  protocols             = ["smb"]
  proxy_file_server_ids = [haven_file_server.nas_proxy.id]

  smb_user                = %q
  smb_domain              = %q
  smb_password            = var.smb_password
  smb_credentials_version = 1
}

resource "haven_nas_share" "data" {
  name          = "projects"
  nas_device_id = haven_nas_device.samba.id
  protocol      = "smb"
  share         = %q
  policy_id     = haven_backup_policy.test.id
  storage_id    = haven_storage.test.id
}

resource "haven_nas_share" "other" {
  name          = "archive"
  nas_device_id = haven_nas_device.samba.id
  protocol      = "smb"
  share         = %q
  policy_id     = haven_backup_policy.test.id
  storage_id    = haven_storage.test.id
}
`, samba.Address, samba.User, samba.Workgroup, testparts.SambaShareData, testparts.SambaShareOther) +
		deliverActivation("nas_proxy", "haven_file_server.nas_proxy.id", "", tokenFile)

	var pointID string
	startProxyAndBackUp := func(s *terraform.State) error {
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
			done <- agent.Run(ctx, agent.Config{Server: srv.URL, ActivationToken: token, StateDir: t.TempDir(), PollWait: time.Second})
		}()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("NAS proxy agent: %v", err)
			}
		})

		rs := s.RootModule().Resources["haven_nas_share.data"]
		if rs == nil {
			return fmt.Errorf("haven_nas_share.data is not in the state")
		}
		wctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		j, err := srv.Client.BackupNow(wctx, rs.Primary.ID)
		if err != nil {
			return err
		}
		if j, err = srv.Client.WaitJob(wctx, j.ID, 100*time.Millisecond); err != nil {
			return err
		}
		if j.State != api.JobSucceeded || j.PointID == "" {
			return fmt.Errorf("backup through the NAS proxy ended %s: %s", j.State, j.Error)
		}
		if j.Progress.FilesDone != int64(len(files)) {
			return fmt.Errorf("backup through the NAS proxy read %d files, the share holds %d", j.Progress.FilesDone, len(files))
		}
		pointID = j.PointID
		return nil
	}
	vars := config.Variables{"smb_password": config.StringVariable(samba.Password)}
	passwordNotInState := []statecheck.StateCheck{
		statecheck.ExpectKnownValue("haven_nas_device.samba", at("smb_password"), knownvalue.Null()),
		statecheck.ExpectKnownValue("haven_nas_device.samba", at("has_smb_password"), knownvalue.Bool(true)),
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		Steps: []resource.TestStep{
			{
				Config:            base,
				ConfigVariables:   vars,
				ConfigStateChecks: passwordNotInState,
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(samba.Password),
					startProxyAndBackUp,
				),
			},
			{
				Config: base + `
data "haven_recovery_point" "data" {
  asset_id = haven_nas_share.data.id
}

resource "haven_restore" "into_other" {
  point_id = data.haven_recovery_point.data.id

  nas {
    share_id = haven_nas_share.other.id
    path     = "restored"
  }
}
`,
				ConfigVariables:   vars,
				ConfigStateChecks: passwordNotInState,
				Check: resource.ComposeAggregateTestCheckFunc(
					func(s *terraform.State) error {
						want := s.RootModule().Resources["data.haven_recovery_point.data"]
						if want == nil || want.Primary.ID != pointID {
							return fmt.Errorf("haven_recovery_point found %v, want the backup's point %s", want, pointID)
						}
						return nil
					},
					resource.TestCheckResourceAttr("haven_restore.into_other", "state", api.JobSucceeded),
					resource.TestCheckResourceAttr("haven_restore.into_other", "files_restored", strconv.Itoa(len(files))),
					resource.TestCheckResourceAttr("haven_restore.into_other", "bytes_restored", strconv.FormatInt(total, 10)),
					resource.TestCheckResourceAttrPair("haven_restore.into_other", "nas.share_id", "haven_nas_share.other", "id"),
					checkShareTree(filepath.Join(otherDir, "restored"), files),
					checkSecretNotInState(samba.Password),
				),
			},
		},
	})
}
