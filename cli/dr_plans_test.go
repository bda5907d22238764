package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestDRPlans manages a DR plan through `haven dr-plans`: create from a
// YAML file naming the target and the protected VM by name, list, show,
// a refused plan naming the field, replicate now with --wait, delete.
func TestDRPlans(t *testing.T) {
	d := newDRSetup(t, nil)
	target, err := d.srv.Client.AWSTargets().Create(context.Background(), api.AWSTargetRequest{AWSTargetSpec: d.targetSpec()})
	if err != nil {
		t.Fatal(err)
	}
	file := func(yaml string) string {
		p := filepath.Join(t.TempDir(), "plan.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	spec := "name: site\ntarget_id: dr\nreplication_interval_minutes: 15\nvms:\n  - protected_vm_id: db-01\n    boot_group: 0\n"

	code, out, _ := haven(t, "dr-plans", "create", "-f", file(spec), "-o", "json")
	var created api.DRPlan
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || created.TargetID != target.ID || created.VMs[0].Name != "db-01" ||
		created.VMs[0].InstanceType != api.InstanceTypeAuto {
		t.Fatalf("dr-plans create: exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "dr-plans", "list")
	if code != 0 || !regexp.MustCompile(`site\s+`+target.ID+`\s+1\s+15m\s+0\s+-`).MatchString(out) {
		t.Fatalf("dr-plans list: exit %d, printed %q", code, out)
	}
	code, _, errOut := haven(t, "dr-plans", "update", "site", "-f", file(spec+"    depends_on: [web]\n"))
	if code != 1 || !strings.Contains(errOut, "vms[0].depends_on") {
		t.Fatalf("an unknown dependency: exit %d, stderr %q", code, errOut)
	}
	code, out, _ = haven(t, "dr-plan", "replicate", "site", "--wait", "-o", "json")
	var j api.Job
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j.Kind != api.JobDRReplicate || j.State != api.JobSucceeded || j.Result["disks_copied"] != "0" {
		t.Fatalf("dr-plans replicate (the VM has no point yet): exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "dr-plan", "show", "site", "-o", "yaml")
	if code != 0 || !strings.Contains(out, "last_replication_job:") || !strings.Contains(out, j.ID) {
		t.Fatalf("dr-plans show: exit %d, printed %q", code, out)
	}
	if code, out, _ := haven(t, "dr-plans", "delete", "site"); code != 0 || !strings.Contains(out, fmt.Sprintf("DR plan site (%s) deleted", created.ID)) {
		t.Fatalf("dr-plans delete: exit %d, printed %q", code, out)
	}
}

// drSetup is what a DR command needs: moto, vcsim, a server, a storage,
// a policy and the simulator's vCenter, with db-01 protected; the
// environment points the CLI at the server.
type drSetup struct {
	srv      *servertest.Server
	sim      *testparts.VCSimEnv
	endpoint string
	vm       *api.ProtectedVM
}

func newDRSetup(t *testing.T, adjust func(*server.Config)) *drSetup {
	t.Helper()
	ctx := context.Background()
	d := &drSetup{endpoint: testparts.Moto(t), sim: testparts.VCSim(t)}
	d.srv = servertest.StartWith(t, adjust)
	t.Setenv("HAVEN_ENDPOINT", d.srv.URL)
	t.Setenv("HAVEN_TOKEN", d.srv.AdminToken)
	c := d.srv.Client
	stg, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "vms", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "daily", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	vc, err := c.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: api.VCenterSpec{Name: "sim", URL: d.sim.URL,
		Username: d.sim.Username, Password: d.sim.Password, Thumbprint: d.sim.Thumbprint}})
	if err != nil {
		t.Fatal(err)
	}
	vms, err := c.VMs(ctx, vc.ID, api.VMFilter{Name: "db-01"})
	if err != nil || len(vms) != 1 {
		t.Fatalf("db-01: %+v %v", vms, err)
	}
	if d.vm, err = c.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: api.ProtectedVMSpec{VCenterID: vc.ID,
		InstanceUUID: vms[0].InstanceUUID, PolicyID: pol.ID, StorageID: stg.ID}}); err != nil {
		t.Fatal(err)
	}
	return d
}

// targetSpec is an AWS target "dr" on moto.
func (d *drSetup) targetSpec() api.AWSTargetSpec {
	return api.AWSTargetSpec{Name: "dr", Region: testparts.MotoRegion, Credentials: api.AWSCredentialsAccessKey,
		AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey, Endpoint: d.endpoint}
}
