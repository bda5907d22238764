package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestAWSTargets manages an AWS target on moto through `haven aws-targets`
// (and its alias aws-target): create from a YAML file, list, show without
// the secret, update keeping the secret, a refused check naming the field,
// and delete.
func TestAWSTargets(t *testing.T) {
	endpoint := testparts.Moto(t)
	srv := servertest.Start(t)
	t.Setenv("HAVEN_ENDPOINT", srv.URL)
	t.Setenv("HAVEN_TOKEN", srv.AdminToken)
	const secret = "cli-test-secret-0c1d2e3f"
	file := func(yaml string) string {
		p := filepath.Join(t.TempDir(), "target.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	spec := fmt.Sprintf("name: dr\nregion: %s\ncredentials: access_key\naccess_key_id: AKIAHAVENCLI00000001\nendpoint: %s\n",
		testparts.MotoRegion, endpoint)

	code, out, _ := haven(t, "aws-targets", "create", "-f", file(spec+"secret_access_key: "+secret+"\n"), "-o", "json")
	var created api.AWSTarget
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || created.Status != "connected" || !created.HasSecret ||
		!regexp.MustCompile(`^[0-9]{12}$`).MatchString(created.AccountID) {
		t.Fatalf("aws-targets create: exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "aws-targets", "list")
	if code != 0 || !strings.Contains(out, "ACCOUNT") || !regexp.MustCompile(`dr\s+`+testparts.MotoRegion+`\s+`+created.AccountID+`\s+access_key\s+connected`).MatchString(out) {
		t.Fatalf("aws-targets list: exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "aws-target", "show", "dr", "-o", "yaml")
	if code != 0 || !strings.Contains(out, "has_secret: true") || strings.Contains(out, secret) || strings.Contains(out, "secret_access_key") {
		t.Fatalf("aws-target show: exit %d, printed %q", code, out)
	}

	// The update leaves the secret out: the server keeps it.
	code, out, _ = haven(t, "aws-targets", "update", "dr", "-f", file(spec+"group: team-a\n"), "-o", "json")
	var updated api.AWSTarget
	if code != 0 || json.Unmarshal([]byte(out), &updated) != nil || updated.Group != "team-a" || !updated.HasSecret || updated.Version != created.Version+1 {
		t.Fatalf("aws-targets update keeping the secret: exit %d, printed %q", code, out)
	}
	code, _, errOut := haven(t, "aws-targets", "update", "dr", "-f", file(spec+"vpc_id: vpc-0123456789abcdef0\n"))
	if code != 1 || !strings.Contains(errOut, "vpc_id") || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("an unknown VPC: exit %d, stderr %q", code, errOut)
	}

	if code, out, _ := haven(t, "aws-targets", "delete", "dr"); code != 0 || !strings.Contains(out, "AWS target dr ("+created.ID+") deleted") {
		t.Fatalf("aws-targets delete: exit %d, printed %q", code, out)
	}
}
