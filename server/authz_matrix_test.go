package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestAuthorizationMatrix sends every operation of the OpenAPI document as
// every kind of caller (admin, operator, group_admin inside and outside
// the object's group, read_only, an agent, no token) and holds each answer
// to the server's authorization table: a refused cell must get exactly its
// 401 or 403, an allowed one must get through (never 401 or 403, and never
// a 5xx). An operation without a row in the table fails the test, as does
// a row for an operation the server does not serve.
func TestAuthorizationMatrix(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	table := server.Authorization()
	fx := newMatrixFixtures(t, srv)

	doc := loadOpenAPI(t)
	var ops []string
	for path, methods := range doc.Paths {
		for method := range methods {
			if method != "parameters" {
				ops = append(ops, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, op := range ops {
		if _, ok := table[op]; !ok {
			t.Errorf("%s has no row in the authorization table (server/authz.go)", op)
		}
	}
	for op := range table {
		if !slices.Contains(ops, op) {
			t.Errorf("the authorization table has a row for %s, which the OpenAPI document does not describe", op)
		}
	}
	// Deletes run last, those of group-scoped objects first, so that every
	// group check finds its object; within an operation the callers to be
	// refused go before those let through, who may change or remove it.
	sort.Slice(ops, func(i, j int) bool {
		return fmt.Sprint(opOrder(ops[i]), ops[i]) < fmt.Sprint(opOrder(ops[j]), ops[j])
	})
	callers := []server.Caller{server.CallerNone, server.CallerAgent, server.CallerReadOnly, server.CallerGroupAdminOut,
		server.CallerGroupAdminIn, server.CallerOperator, server.CallerAdmin}
	for _, op := range ops {
		access, ok := table[op]
		if !ok {
			continue
		}
		method, path, _ := strings.Cut(op, " ")
		target, body := fx.request(method, path)
		for _, c := range callers {
			req, err := http.NewRequestWithContext(ctx, method, srv.URL+target, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tok := fx.tokens[c]; tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s as %s: %v", op, c, err)
			}
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			want := access.Expect[c]
			switch {
			case want == server.Allowed && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
				t.Errorf("%s as %s: %d, want it let through: %s", op, c, resp.StatusCode, answer)
			case want == server.Allowed && resp.StatusCode >= 500:
				t.Errorf("%s as %s: %d (a server fault): %s", op, c, resp.StatusCode, answer)
			case want != server.Allowed && resp.StatusCode != want:
				t.Errorf("%s as %s: %d, want %d: %s", op, c, resp.StatusCode, want, answer)
			}
		}
	}
}

// opOrder sorts deletes after everything else, and the deletes of objects
// a group owns before the others.
func opOrder(op string) int {
	switch {
	case !strings.HasPrefix(op, "DELETE "):
		return 0
	case strings.Contains(op, "/dr-plans/"):
		return 1 // before the protected VMs and targets they use
	case strings.Contains(op, "/filesets/"), strings.Contains(op, "/protected-vms/"), strings.Contains(op, "/vm-protection-rules/"),
		strings.Contains(op, "/database-sets/"), strings.Contains(op, "/nas-shares/"):
		return 2
	}
	return 3
}

// matrixFixtures are the objects the matrix's requests name, all of group
// team-a, and a token of every kind of caller.
type matrixFixtures struct {
	tokens                                            map[server.Caller]string
	storage, policy, fileServer, fileset, vcenter     string
	protectedVM, rule, job, agentJob, point, oldToken string
	fileServerSpec                                    api.FileServerSpec
	filesetSpec                                       api.FilesetSpec
	vmSpec                                            api.ProtectedVMSpec
	ruleSpec                                          api.VMProtectionRuleSpec
	otherVM, restoreDir, usedActivation               string
	dbServer, dbSet                                   string
	dbServerSpec                                      api.DatabaseServerSpec
	dbSetSpec                                         api.DatabaseSetSpec
	awsTarget                                         string
	awsTargetSpec                                     api.AWSTargetSpec
	drPlan                                            string
	drPlanSpec                                        api.DRPlanSpec
	nasDevice, nasShare                               string
	nasDeviceSpec                                     api.NASDeviceSpec
	nasShareSpec                                      api.NASShareSpec
	// pointFile is the file the fixture point holds.
	pointFile string
}

func newMatrixFixtures(t *testing.T, srv *servertest.Server) *matrixFixtures {
	t.Helper()
	ctx := context.Background()
	c := srv.Client
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	fx := &matrixFixtures{tokens: map[server.Caller]string{server.CallerAdmin: srv.AdminToken}}
	for caller, req := range map[server.Caller]api.TokenRequest{
		server.CallerOperator:      {Name: "m-operator", Role: api.RoleOperator},
		server.CallerGroupAdminIn:  {Name: "m-team-a", Role: api.RoleGroupAdmin, Groups: []string{"team-a"}},
		server.CallerGroupAdminOut: {Name: "m-team-b", Role: api.RoleGroupAdmin, Groups: []string{"team-b"}},
		server.CallerReadOnly:      {Name: "m-reader", Role: api.RoleReadOnly},
	} {
		tok, err := c.CreateToken(ctx, req)
		must(err)
		fx.tokens[caller] = tok.Secret
	}
	old, err := c.CreateToken(ctx, api.TokenRequest{Name: "m-revoked", Role: api.RoleReadOnly})
	must(err)
	fx.oldToken = old.ID

	st, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "m-store", Kind: api.StorageFilesystem, Path: t.TempDir()}})
	must(err)
	fx.storage = st.ID
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "m-daily", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	must(err)
	fx.policy = pol.ID
	fx.fileServerSpec = api.FileServerSpec{Name: "m-here", Hostname: "localhost", OS: "linux", Location: api.LocationServer, Group: "team-a"}
	here, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: fx.fileServerSpec})
	must(err)
	fx.fileServer = here.ID
	src := t.TempDir()
	must(os.WriteFile(filepath.Join(src, "a.txt"), []byte("matrix"), 0o600))
	fx.pointFile = filepath.Join(src, "a.txt")
	fx.filesetSpec = api.FilesetSpec{Name: "m-docs", FileServerID: here.ID, IncludePaths: []string{src}, PolicyID: pol.ID, StorageID: st.ID, Group: "team-a"}
	set, err := c.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: fx.filesetSpec})
	must(err)
	fx.fileset = set.ID
	j, err := c.BackupNow(ctx, set.ID)
	must(err)
	if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("fixture backup: %+v", j)
	}
	fx.job, fx.point = j.ID, j.PointID
	fx.restoreDir = t.TempDir()

	// An agent's credential, and a job of its own to call the agent
	// protocol about.
	remote, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "m-remote", Hostname: "remote", OS: "linux", Location: api.LocationAgent}})
	must(err)
	var act api.Activation
	must(c.Do(ctx, http.MethodPost, "/v1/agents/activate", nil, api.ActivateRequest{ActivationToken: remote.ActivationToken, Hostname: "remote"}, &act))
	fx.tokens[server.CallerAgent] = act.Token
	fx.usedActivation = remote.ActivationToken
	remoteSet, err := c.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "m-remote-docs", FileServerID: remote.ID,
		IncludePaths: []string{"/srv"}, PolicyID: pol.ID, StorageID: st.ID, Group: "team-a"}})
	must(err)
	aj, err := c.BackupNow(ctx, remoteSet.ID)
	must(err)
	fx.agentJob = aj.ID
	fx.dbServerSpec = api.DatabaseServerSpec{Name: "m-pg", FileServerID: remote.ID, Host: "/var/run/postgresql", User: "postgres", Group: "team-a"}
	dbs, err := c.DatabaseServers().Create(ctx, api.DatabaseServerRequest{DatabaseServerSpec: fx.dbServerSpec})
	must(err)
	fx.dbServer = dbs.ID
	fx.dbSetSpec = api.DatabaseSetSpec{Name: "m-pg-all", DatabaseServerID: dbs.ID, PolicyID: pol.ID, StorageID: st.ID, Group: "team-a"}
	dset, err := c.DatabaseSets().Create(ctx, api.DatabaseSetRequest{DatabaseSetSpec: fx.dbSetSpec})
	must(err)
	fx.dbSet = dset.ID
	fx.nasDeviceSpec = api.NASDeviceSpec{Name: "m-nas", Host: "nas.example.com", Protocols: []string{api.ProtocolNFS, api.ProtocolSMB},
		SMBUser: "backup", SMBPassword: "m-nas-Pa55", ProxyFileServerIDs: []string{remote.ID}, Group: "team-a"}
	dev, err := c.NASDevices().Create(ctx, api.NASDeviceRequest{NASDeviceSpec: fx.nasDeviceSpec})
	must(err)
	fx.nasDevice = dev.ID
	fx.nasShareSpec = api.NASShareSpec{Name: "m-projects", NASDeviceID: dev.ID, Protocol: api.ProtocolSMB, Share: "projects", PolicyID: pol.ID, StorageID: st.ID}
	share, err := c.NASShares().Create(ctx, api.NASShareRequest{NASShareSpec: fx.nasShareSpec})
	must(err)
	fx.nasShare = share.ID

	vc := testparts.VCSim(t)
	center, err := c.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: api.VCenterSpec{Name: "m-sim", URL: vc.URL,
		Username: vc.Username, Password: vc.Password, Thumbprint: vc.Thumbprint, Group: "team-a"}})
	must(err)
	fx.vcenter = center.ID
	vms, err := c.VMs(ctx, center.ID, api.VMFilter{})
	must(err)
	if len(vms) < 2 {
		t.Fatalf("vcsim has %d VMs, the matrix needs two", len(vms))
	}
	fx.vmSpec = api.ProtectedVMSpec{VCenterID: center.ID, InstanceUUID: vms[0].InstanceUUID, PolicyID: pol.ID, StorageID: st.ID, Group: "team-a"}
	fx.otherVM = vms[1].InstanceUUID
	pv, err := c.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: fx.vmSpec})
	must(err)
	fx.protectedVM = pv.ID
	fx.ruleSpec = api.VMProtectionRuleSpec{Name: "m-rule", VCenterID: center.ID, NameRegex: "^nothing-matches$", PolicyID: pol.ID, StorageID: st.ID, Group: "team-a"}
	rule, err := c.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: fx.ruleSpec})
	must(err)
	fx.rule = rule.ID

	fx.awsTargetSpec = api.AWSTargetSpec{Name: "m-aws", Region: testparts.MotoRegion, Credentials: api.AWSCredentialsAccessKey,
		AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey, Endpoint: testparts.Moto(t), Group: "team-a"}
	target, err := c.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: fx.awsTargetSpec})
	must(err)
	fx.awsTarget = target.ID

	fx.drPlanSpec = api.DRPlanSpec{Name: "m-plan", TargetID: target.ID, ReplicationIntervalMinutes: 60,
		VMs: []api.DRPlanVM{{ProtectedVMID: fx.protectedVM, Name: "m-vm"}}}
	plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: fx.drPlanSpec})
	must(err)
	fx.drPlan = plan.ID
	return fx
}

// request is the path (ids filled in from the fixtures) and body the
// matrix sends for an operation. Group-scoped writes get a body valid for
// the fixtures of team-a, so that only the caller decides the answer.
func (fx *matrixFixtures) request(method, path string) (string, string) {
	ids := []struct{ prefix, id string }{
		{"/v1/storages/", fx.storage}, {"/v1/backup-policies/", fx.policy}, {"/v1/file-servers/", fx.fileServer},
		{"/v1/filesets/", fx.fileset}, {"/v1/vcenters/", fx.vcenter}, {"/v1/protected-vms/", fx.protectedVM},
		{"/v1/vm-protection-rules/", fx.rule}, {"/v1/assets/", fx.fileset}, {"/v1/jobs/", fx.job},
		{"/v1/points/", fx.point}, {"/v1/agent/jobs/", fx.agentJob}, {"/v1/tokens/", fx.oldToken},
		{"/v1/database-servers/", fx.dbServer}, {"/v1/database-sets/", fx.dbSet}, {"/v1/aws-targets/", fx.awsTarget},
		{"/v1/dr-plans/", fx.drPlan}, {"/v1/nas-devices/", fx.nasDevice}, {"/v1/nas-shares/", fx.nasShare},
	}
	for _, p := range ids {
		if strings.HasPrefix(path, p.prefix) {
			path = strings.Replace(path, "{id}", p.id, 1)
		}
	}
	js := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	newFileset := fx.filesetSpec
	newFileset.Name = "m-docs-2"
	newVM := fx.vmSpec
	newVM.InstanceUUID = fx.otherVM
	newRule := fx.ruleSpec
	newRule.Name = "m-rule-2"
	switch method + " " + path {
	case "POST /v1/agents/activate":
		// A used activation token: the row says everyone gets 401.
		return path, js(api.ActivateRequest{ActivationToken: fx.usedActivation, Hostname: "remote"})
	case "GET /v1/agent/work":
		return path + "?wait=0s", ""
	case "POST /v1/file-servers":
		spec := fx.fileServerSpec
		spec.Name = "m-here-2"
		return path, js(api.FileServerRequest{FileServerSpec: spec})
	case "PUT /v1/file-servers/" + fx.fileServer:
		return path, js(api.FileServerRequest{FileServerSpec: fx.fileServerSpec})
	case "POST /v1/filesets":
		return path, js(api.FilesetRequest{FilesetSpec: newFileset})
	case "PUT /v1/filesets/" + fx.fileset:
		return path, js(api.FilesetRequest{FilesetSpec: fx.filesetSpec})
	case "POST /v1/protected-vms":
		return path, js(api.ProtectedVMRequest{ProtectedVMSpec: newVM})
	case "PUT /v1/protected-vms/" + fx.protectedVM:
		return path, js(api.ProtectedVMRequest{ProtectedVMSpec: fx.vmSpec})
	case "POST /v1/vm-protection-rules":
		return path, js(api.VMProtectionRuleRequest{VMProtectionRuleSpec: newRule})
	case "PUT /v1/vm-protection-rules/" + fx.rule:
		return path, js(api.VMProtectionRuleRequest{VMProtectionRuleSpec: fx.ruleSpec})
	case "POST /v1/database-servers":
		spec := fx.dbServerSpec
		spec.Name = "m-pg-2"
		return path, js(api.DatabaseServerRequest{DatabaseServerSpec: spec})
	case "PUT /v1/database-servers/" + fx.dbServer:
		return path, js(api.DatabaseServerRequest{DatabaseServerSpec: fx.dbServerSpec})
	case "POST /v1/database-sets":
		spec := fx.dbSetSpec
		spec.Name = "m-pg-all-2"
		return path, js(api.DatabaseSetRequest{DatabaseSetSpec: spec})
	case "PUT /v1/database-sets/" + fx.dbSet:
		return path, js(api.DatabaseSetRequest{DatabaseSetSpec: fx.dbSetSpec})
	case "POST /v1/nas-devices":
		spec := fx.nasDeviceSpec
		spec.Name = "m-nas-2"
		return path, js(api.NASDeviceRequest{NASDeviceSpec: spec})
	case "PUT /v1/nas-devices/" + fx.nasDevice:
		// The stored password is kept.
		spec := fx.nasDeviceSpec
		spec.SMBPassword = ""
		return path, js(api.NASDeviceRequest{NASDeviceSpec: spec})
	case "POST /v1/nas-shares":
		spec := fx.nasShareSpec
		spec.Name = "m-projects-2"
		return path, js(api.NASShareRequest{NASShareSpec: spec})
	case "PUT /v1/nas-shares/" + fx.nasShare:
		return path, js(api.NASShareRequest{NASShareSpec: fx.nasShareSpec})
	case "POST /v1/aws-targets":
		spec := fx.awsTargetSpec
		spec.Name = "m-aws-2"
		return path, js(api.AWSTargetRequest{AWSTargetSpec: spec})
	case "PUT /v1/aws-targets/" + fx.awsTarget:
		// The stored secret is kept.
		spec := fx.awsTargetSpec
		spec.SecretAccessKey = ""
		return path, js(api.AWSTargetRequest{AWSTargetSpec: spec})
	case "POST /v1/dr-plans":
		spec := fx.drPlanSpec
		spec.Name = "m-plan-2"
		return path, js(api.DRPlanRequest{DRPlanSpec: spec})
	case "PUT /v1/dr-plans/" + fx.drPlan:
		return path, js(api.DRPlanRequest{DRPlanSpec: fx.drPlanSpec})
	case "POST /v1/restores":
		return path, js(api.RestoreRequest{PointID: fx.point, TargetPath: fx.restoreDir})
	case "PUT /v1/points/" + fx.point + "/legal-hold":
		return path, js(api.LegalHoldRequest{LegalHold: false})
	case "GET /v1/points/" + fx.point + "/content":
		return path + "?" + url.Values{"path": {fx.pointFile}}.Encode(), ""
	case "GET /v1/points/diff":
		return path + "?" + url.Values{"from": {fx.point}, "to": {fx.point}}.Encode(), ""
	case "GET /v1/points/find":
		return path + "?pattern=*.txt", ""
	}
	if method == http.MethodGet || method == http.MethodDelete {
		return path, ""
	}
	return path, "{}"
}
