package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// motoVPC is a VPC made on moto for a test, with two subnets and two
// security groups in it.
type motoVPC struct {
	id              string
	subnets, groups [2]string
}

// newMotoVPC creates a VPC of address range 10.<n>.0.0/16 with its subnets
// and security groups in moto's region.
func newMotoVPC(t *testing.T, endpoint string, n int) motoVPC {
	t.Helper()
	ctx := t.Context()
	c := testparts.MotoEC2Client(endpoint)
	vpc, err := c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10." + strconv.Itoa(n) + ".0.0/16")})
	if err != nil {
		t.Fatalf("moto: CreateVpc: %v", err)
	}
	v := motoVPC{id: aws.ToString(vpc.Vpc.VpcId)}
	for i := range 2 {
		sn, err := c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("10." + strconv.Itoa(n) + "." + strconv.Itoa(i) + ".0/24")})
		if err != nil {
			t.Fatalf("moto: CreateSubnet: %v", err)
		}
		sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{VpcId: vpc.Vpc.VpcId,
			GroupName: aws.String("haven-" + strconv.Itoa(n) + "-" + strconv.Itoa(i)), Description: aws.String("Haven test")})
		if err != nil {
			t.Fatalf("moto: CreateSecurityGroup: %v", err)
		}
		v.subnets[i], v.groups[i] = aws.ToString(sn.Subnet.SubnetId), aws.ToString(sg.GroupId)
	}
	return v
}

// testSecret is a secret access key no other test uses, to look for in
// answers, logs and the database.
func testSecret(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "haven-test-secret-" + hex.EncodeToString(b)
}

var accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)

// TestAWSTargetRegistration registers an AWS target on moto with an access
// key: the server checks the credentials (STS) and the default network
// (EC2), refuses each bad setting with the field to fix and stores
// nothing then, keeps the secret sealed and out of every answer, keeps it
// across an update that leaves it out, and also takes the host's ambient
// credentials and a role assumed from them.
func TestAWSTargetRegistration(t *testing.T) {
	endpoint := testparts.Moto(t)
	srv := servertest.Start(t)
	ctx := context.Background()
	a, b := newMotoVPC(t, endpoint, 101), newMotoVPC(t, endpoint, 102)
	secret := testSecret(t)
	spec := api.AWSTargetSpec{Name: "dr", Region: testparts.MotoRegion, Credentials: api.AWSCredentialsAccessKey,
		AccessKeyID: "AKIAHAVENTEST0000001", SecretAccessKey: secret, Endpoint: endpoint,
		VPCID: a.id, SubnetID: a.subnets[0], SecurityGroupIDs: []string{a.groups[0]}, Group: "team-a"}

	for _, c := range []struct {
		what   string
		mutate func(*api.AWSTargetSpec)
		status int
		field  string
		says   string
	}{
		{"a region that is no region name", func(s *api.AWSTargetSpec) { s.Region = "us-east" }, 400, "region", "AWS region name"},
		{"no secret", func(s *api.AWSTargetSpec) { s.SecretAccessKey = "" }, 400, "secret_access_key", "required"},
		{"no role to assume", func(s *api.AWSTargetSpec) { s.Credentials = api.AWSCredentialsAssumeRole }, 400, "role_arn", "required"},
		{"a subnet without its VPC", func(s *api.AWSTargetSpec) { s.VPCID = "" }, 400, "vpc_id", "subnet_id"},
		{"a subnet of another VPC", func(s *api.AWSTargetSpec) { s.SubnetID = b.subnets[0] }, 422, "subnet_id", "is in VPC " + b.id},
		{"an unknown security group", func(s *api.AWSTargetSpec) { s.SecurityGroupIDs = []string{a.groups[0], "sg-0123456789abcdef0"} }, 422,
			"security_group_ids", "sg-0123456789abcdef0 does not exist"},
		{"a security group of another VPC", func(s *api.AWSTargetSpec) { s.SecurityGroupIDs = []string{b.groups[1]} }, 422,
			"security_group_ids", b.groups[1] + " belongs to VPC " + b.id},
		{"an unknown VPC", func(s *api.AWSTargetSpec) { s.VPCID = "vpc-0123456789abcdef0" }, 422, "vpc_id", "does not exist"},
		{"a VPC of another region", func(s *api.AWSTargetSpec) { s.Region = "eu-west-3" }, 422, "vpc_id", "does not exist in region eu-west-3"},
		{"an endpoint nothing listens on", func(s *api.AWSTargetSpec) { s.Endpoint = "http://127.0.0.1:1" }, 422, "endpoint", "cannot be reached"},
	} {
		bad := spec
		c.mutate(&bad)
		_, err := srv.Client.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: bad})
		e, ok := err.(*api.Error)
		if !ok || e.Status != c.status || e.Field != c.field || !strings.Contains(e.Message, c.says) || strings.Contains(e.Message, secret) {
			t.Errorf("%s: got %v, want %d on %s saying %q", c.what, err, c.status, c.field, c.says)
		}
	}
	if all, err := srv.Client.AWSTargets().ListAll(ctx); err != nil || len(all) != 0 {
		t.Fatalf("failed creates stored %d AWS targets (%v)", len(all), err)
	}

	created, err := srv.Client.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if created.Status != "connected" || !created.HasSecret || created.SecretAccessKey != "" || created.CheckedAt == nil ||
		!accountIDPattern.MatchString(created.AccountID) || created.SubnetID != a.subnets[0] || created.Group != "team-a" {
		t.Fatalf("registered target: %+v", created)
	}

	// An update that leaves the secret out keeps the stored one; another
	// access key needs its own.
	keep := spec
	keep.SecretAccessKey, keep.SubnetID, keep.SecurityGroupIDs = "", a.subnets[1], []string{a.groups[1], a.groups[0]}
	updated, err := srv.Client.AWSTargets().Update(ctx, created.ID, created.Version, api.AWSTargetRequest{AWSTargetSpec: keep})
	if err != nil {
		t.Fatalf("update keeping the secret: %v", err)
	}
	if !updated.HasSecret || updated.SubnetID != a.subnets[1] || len(updated.SecurityGroupIDs) != 2 || updated.Version != created.Version+1 {
		t.Fatalf("updated target: %+v", updated)
	}
	other := keep
	other.AccessKeyID = "AKIAHAVENTEST0000002"
	_, err = srv.Client.AWSTargets().Update(ctx, created.ID, updated.Version, api.AWSTargetRequest{AWSTargetSpec: other})
	if e, ok := err.(*api.Error); !ok || e.Field != "secret_access_key" {
		t.Fatalf("another access key without its secret: %v", err)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/aws-targets/"+created.ID, nil)
	req.Header.Set("Authorization", "Bearer "+srv.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(raw), secret) || strings.Contains(string(raw), "secret_access_key") || strings.Contains(srv.Logs(), secret) {
		t.Fatalf("the secret leaked into an answer or the log: %s", raw)
	}
	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var specText string
	var sealed []byte
	if err := conn.QueryRow(ctx, `SELECT spec::text, sealed_secret FROM aws_targets WHERE id = $1`, created.ID).Scan(&specText, &sealed); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(specText, secret) || strings.Contains(string(sealed), secret) || len(sealed) == 0 {
		t.Fatal("the database holds the secret in clear text")
	}

	// Ambient credentials are the SDK's default chain on the server host
	// (here its environment); the stored secret goes with the access key.
	t.Setenv("AWS_ACCESS_KEY_ID", testparts.MotoAccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testparts.MotoSecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	ambient := keep
	ambient.Credentials, ambient.AccessKeyID = api.AWSCredentialsAmbient, ""
	amb, err := srv.Client.AWSTargets().Update(ctx, created.ID, 0, api.AWSTargetRequest{AWSTargetSpec: ambient})
	if err != nil || amb.HasSecret || amb.Status != "connected" || amb.AccountID != created.AccountID {
		t.Fatalf("ambient credentials: %v %+v", err, amb)
	}
	// A role in another account, assumed from them: the checks act in
	// the role's account, which has no such VPC, and the account is the
	// role's.
	role := ambient
	role.Credentials, role.RoleARN, role.ExternalID = api.AWSCredentialsAssumeRole, "arn:aws:iam::111122223333:role/haven-dr", "haven-external"
	_, err = srv.Client.AWSTargets().Update(ctx, created.ID, 0, api.AWSTargetRequest{AWSTargetSpec: role})
	if e, ok := err.(*api.Error); !ok || e.Field != "vpc_id" || !strings.Contains(e.Message, "account 111122223333") {
		t.Fatalf("a role in another account, with this account's VPC: %v", err)
	}
	role.VPCID, role.SubnetID, role.SecurityGroupIDs = "", "", nil
	assumed, err := srv.Client.AWSTargets().Update(ctx, created.ID, 0, api.AWSTargetRequest{AWSTargetSpec: role})
	if err != nil || assumed.AccountID != "111122223333" || assumed.RoleARN != role.RoleARN || assumed.ExternalID != "haven-external" || assumed.HasSecret {
		t.Fatalf("assumed role: %v %+v", err, assumed)
	}

	if err := srv.Client.AWSTargets().Delete(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.AWSTargets().Get(ctx, "dr"); !api.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
}

// TestAWSTargetCredentialsRefused checks credentials on a moto server that
// verifies signatures and permissions as AWS does: an unknown key, a wrong
// secret and a role the key may not assume are each a 422 on credentials
// that says why without the secret, and nothing is stored; ambient
// credentials are the server host's own. Moto answers
// these refusals of STS calls with an error body in EC2's shape, which the
// SDK reads as UnknownError, so the reason checked is the 403 that comes
// with it.
func TestAWSTargetCredentialsRefused(t *testing.T) {
	m := testparts.MotoWithAuth(t)
	srv := servertest.Start(t)
	ctx := context.Background()
	spec := api.AWSTargetSpec{Name: "dr", Region: testparts.MotoRegion, Credentials: api.AWSCredentialsAccessKey,
		AccessKeyID: m.Allowed.AccessKeyID, SecretAccessKey: m.Allowed.SecretAccessKey, Endpoint: m.Endpoint}
	for _, c := range []struct {
		what   string
		mutate func(*api.AWSTargetSpec)
		says   string
	}{
		{"an unknown access key", func(s *api.AWSTargetSpec) { s.AccessKeyID = "AKIAHAVENUNKNOWN0000" }, "AWS refused the credentials: "},
		{"a wrong secret", func(s *api.AWSTargetSpec) { s.SecretAccessKey = "wrong-" + s.SecretAccessKey }, "AWS refused the credentials: "},
		{"a role the key may not assume", func(s *api.AWSTargetSpec) {
			s.Credentials, s.RoleARN = api.AWSCredentialsAssumeRole, "arn:aws:iam::123456789012:role/haven-dr"
			s.AccessKeyID, s.SecretAccessKey = m.Denied.AccessKeyID, m.Denied.SecretAccessKey
		}, "assuming role arn:aws:iam::123456789012:role/haven-dr failed: "},
	} {
		bad := spec
		c.mutate(&bad)
		_, err := srv.Client.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: bad})
		e, ok := err.(*api.Error)
		if !ok || e.Status != http.StatusUnprocessableEntity || e.Field != "credentials" || !strings.Contains(e.Message, c.says) ||
			!strings.Contains(e.Message, "(HTTP 403)") || strings.Contains(e.Message, bad.SecretAccessKey) {
			t.Errorf("%s: got %v, want 422 on credentials saying %q and HTTP 403", c.what, err, c.says)
		}
	}
	if all, err := srv.Client.AWSTargets().ListAll(ctx); err != nil || len(all) != 0 {
		t.Fatalf("failed checks stored %d AWS targets (%v)", len(all), err)
	}
	created, err := srv.Client.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: spec})
	if err != nil || created.Status != "connected" || !accountIDPattern.MatchString(created.AccountID) {
		t.Fatalf("the allowed key: %v %+v", err, created)
	}

	// Ambient credentials are those of the server host's environment:
	// refused when its key is unknown, accepted when it is the allowed one.
	ambient := spec
	ambient.Credentials, ambient.AccessKeyID, ambient.SecretAccessKey = api.AWSCredentialsAmbient, "", ""
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAHAVENUNKNOWN0000")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "unknown-secret")
	_, err = srv.Client.AWSTargets().Update(ctx, created.ID, 0, api.AWSTargetRequest{AWSTargetSpec: ambient})
	if e, ok := err.(*api.Error); !ok || e.Field != "credentials" || !strings.Contains(e.Message, "AWS refused the credentials") {
		t.Fatalf("ambient credentials of an unknown key: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", m.Allowed.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.Allowed.SecretAccessKey)
	amb, err := srv.Client.AWSTargets().Update(ctx, created.ID, 0, api.AWSTargetRequest{AWSTargetSpec: ambient})
	if err != nil || amb.HasSecret || amb.AccountID != created.AccountID {
		t.Fatalf("ambient credentials of the allowed key: %v %+v", err, amb)
	}
}
