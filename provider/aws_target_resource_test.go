package provider

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const awsTargetAddr = "haven_aws_target.test"

// awsTargetSecret is the secret access key the tests give; moto takes any.
const awsTargetSecret = "provider-test-secret-5b7e9d1c"

var accountID = regexp.MustCompile(`^[0-9]{12}$`)

// motoNetwork is a VPC made on moto for a test, with two subnets and two
// security groups in it.
type motoNetwork struct {
	vpc             string
	subnets, groups [2]string
}

// newMotoNetwork creates a VPC of address range 10.<n>.0.0/16 with its
// subnets and security groups, in moto's region.
func newMotoNetwork(t *testing.T, endpoint string, n int) motoNetwork {
	t.Helper()
	ctx := t.Context()
	c := testparts.MotoEC2Client(endpoint)
	net := strconv.Itoa(n)
	vpc, err := c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10." + net + ".0.0/16")})
	if err != nil {
		t.Fatalf("moto: CreateVpc: %v", err)
	}
	m := motoNetwork{vpc: aws.ToString(vpc.Vpc.VpcId)}
	for i := range 2 {
		sn, err := c.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("10." + net + "." + strconv.Itoa(i) + ".0/24")})
		if err != nil {
			t.Fatalf("moto: CreateSubnet: %v", err)
		}
		sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{VpcId: vpc.Vpc.VpcId,
			GroupName: aws.String("haven-" + net + "-" + strconv.Itoa(i)), Description: aws.String("Haven test")})
		if err != nil {
			t.Fatalf("moto: CreateSecurityGroup: %v", err)
		}
		m.subnets[i], m.groups[i] = aws.ToString(sn.Subnet.SubnetId), aws.ToString(sg.GroupId)
	}
	return m
}

// awsTargetConfig registers moto as a target with an access key; network
// is HCL for the network attributes.
func awsTargetConfig(endpoint, name, secret string, secretVersion int, network string) string {
	return fmt.Sprintf(`
resource "haven_aws_target" "test" {
  name                      = %q
  region                    = %q
  credentials               = "access_key"
  access_key_id             = "AKIAHAVENPROVIDER001"
  secret_access_key         = %q
  secret_access_key_version = %d
  endpoint                  = %q
  %s
}
`, name, testparts.MotoRegion, secret, secretVersion, endpoint, network)
}

func awsNetwork(vpc, subnet string, groups ...string) string {
	quoted := make([]string, len(groups))
	for i, g := range groups {
		quoted[i] = strconv.Quote(g)
	}
	return fmt.Sprintf("vpc_id = %q\n  subnet_id = %q\n  security_group_ids = [%s]", vpc, subnet, strings.Join(quoted, ", "))
}

func checkAWSTargetsDestroyed(srv *servertest.Server) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		for addr, rs := range s.RootModule().Resources {
			if rs.Type != "haven_aws_target" {
				continue
			}
			_, err := srv.Client.AWSTargets().Get(context.Background(), rs.Primary.ID)
			if !api.IsNotFound(err) {
				return fmt.Errorf("%s (%s) still exists after destroy (err = %v)", addr, rs.Primary.ID, err)
			}
		}
		return nil
	}
}

func checkAWSTargetOnServer(srv *servertest.Server, name string, want func(*api.AWSTarget) error) resource.TestCheckFunc {
	return func(*terraform.State) error {
		a, err := srv.Client.AWSTargets().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("AWS target %s on the server: %w", name, err)
		}
		return want(a)
	}
}

func TestAccAWSTargetResource(t *testing.T) {
	srv := startParallel(t)
	endpoint := testparts.Moto(t)
	a, b := newMotoNetwork(t, endpoint, 111), newMotoNetwork(t, endpoint, 112)
	cfg := providerConfig(srv)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	newVersion := statecheck.CompareValue(compare.ValuesDiffer())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkAWSTargetsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: cfg + awsTargetConfig(endpoint, "dr", awsTargetSecret, 1, awsNetwork(a.vpc, a.subnets[0], a.groups[0])),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(awsTargetAddr, plancheck.ResourceActionCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(awsTargetAddr, at("id")),
					newVersion.AddStateValue(awsTargetAddr, at("version")),
					statecheck.ExpectKnownValue(awsTargetAddr, at("status"), knownvalue.StringExact("connected")),
					statecheck.ExpectKnownValue(awsTargetAddr, at("status_message"), knownvalue.Null()),
					statecheck.ExpectKnownValue(awsTargetAddr, at("has_secret"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(awsTargetAddr, at("secret_access_key"), knownvalue.Null()),
					statecheck.ExpectKnownValue(awsTargetAddr, at("account_id"), knownvalue.StringRegexp(accountID)),
					statecheck.ExpectKnownValue(awsTargetAddr, at("security_group_ids"), knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact(a.groups[0])})),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(awsTargetSecret),
					checkAWSTargetOnServer(srv, "dr", func(t *api.AWSTarget) error {
						if !t.HasSecret || t.SecretAccessKey != "" || t.VPCID != a.vpc || t.SubnetID != a.subnets[0] || t.Status != "connected" {
							return fmt.Errorf("server holds %+v", t)
						}
						return nil
					}),
				),
			},
			{
				// Another secret under the same version is not sent:
				// Terraform cannot see write-only changes.
				Config:   cfg + awsTargetConfig(endpoint, "dr", "not-the-secret", 1, awsNetwork(a.vpc, a.subnets[0], a.groups[0])),
				PlanOnly: true,
			},
			{
				// A rename and another subnet and groups are an update in
				// place that keeps the stored secret.
				Config: cfg + awsTargetConfig(endpoint, "dr-renamed", "not-the-secret", 1, awsNetwork(a.vpc, a.subnets[1], a.groups[1], a.groups[0])),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(awsTargetAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectUnknownValue(awsTargetAddr, at("version")),
					plancheck.ExpectKnownValue(awsTargetAddr, at("has_secret"), knownvalue.Bool(true)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(awsTargetAddr, at("id")),
					newVersion.AddStateValue(awsTargetAddr, at("version")),
					statecheck.ExpectKnownValue(awsTargetAddr, at("name"), knownvalue.StringExact("dr-renamed")),
					statecheck.ExpectKnownValue(awsTargetAddr, at("subnet_id"), knownvalue.StringExact(a.subnets[1])),
					statecheck.ExpectKnownValue(awsTargetAddr, at("security_group_ids"), knownvalue.SetExact([]knownvalue.Check{
						knownvalue.StringExact(a.groups[0]), knownvalue.StringExact(a.groups[1])})),
					statecheck.ExpectKnownValue(awsTargetAddr, at("status"), knownvalue.StringExact("connected")),
				},
			},
			{
				// A subnet of another VPC: the check fails on subnet_id.
				Config: cfg + awsTargetConfig(endpoint, "dr-renamed", awsTargetSecret, 2, awsNetwork(a.vpc, b.subnets[0], a.groups[0])),
				ExpectError: errorLike("Could not update AWS target dr-renamed", "subnet_id = ",
					"subnet_id: subnet "+b.subnets[0]+" is in VPC "+b.vpc+", not in vpc_id "+a.vpc),
			},
			{
				// Drift: the group is set behind Terraform's back; the plan
				// takes it away again.
				PreConfig: func() {
					ctx := context.Background()
					cur, err := srv.Client.AWSTargets().Get(ctx, "dr-renamed")
					if err != nil {
						t.Fatalf("reading the target: %v", err)
					}
					cur.Group = "team-b"
					if _, err := srv.Client.AWSTargets().Update(ctx, cur.ID, cur.Version, api.AWSTargetRequest{AWSTargetSpec: cur.AWSTargetSpec}); err != nil {
						t.Fatalf("changing the target behind Terraform's back: %v", err)
					}
				},
				Config: cfg + awsTargetConfig(endpoint, "dr-renamed", awsTargetSecret, 2, awsNetwork(a.vpc, a.subnets[1], a.groups[1], a.groups[0])),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(awsTargetAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(awsTargetAddr, at("group"), knownvalue.Null()),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(awsTargetSecret),
					checkAWSTargetOnServer(srv, "dr-renamed", func(t *api.AWSTarget) error {
						if t.Group != "" || !t.HasSecret {
							return fmt.Errorf("drift was not corrected, or the secret was lost: %+v", t)
						}
						return nil
					}),
				),
			},
			{
				ResourceName:            awsTargetAddr,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"secret_access_key", "secret_access_key_version"},
			},
			{
				// Import also takes the name; the state gets the real id.
				ResourceName:            awsTargetAddr,
				ImportState:             true,
				ImportStateId:           "dr-renamed",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"secret_access_key", "secret_access_key_version"},
			},
		},
	})
}

// TestAccAWSTargetResource_checkErrors checks that what only the server's
// check can find out is reported against the attribute to fix, and that a
// failed create leaves nothing behind.
func TestAccAWSTargetResource_checkErrors(t *testing.T) {
	srv := startParallel(t)
	endpoint := testparts.Moto(t)
	a := newMotoNetwork(t, endpoint, 113)
	cfg := providerConfig(srv)
	const unknownGroup = "sg-0123456789abcdef0"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkAWSTargetsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: cfg + awsTargetConfig(endpoint, "dr", awsTargetSecret, 1, awsNetwork(a.vpc, a.subnets[0], a.groups[0], unknownGroup)),
				ExpectError: errorLike("Could not create AWS target dr", "security_group_ids = ",
					"security_group_ids: security group "+unknownGroup+" does not exist in region "+testparts.MotoRegion),
			},
			{
				Config:      cfg + awsTargetConfig("http://127.0.0.1:1", "dr", awsTargetSecret, 1, ""),
				ExpectError: errorLike("Could not create AWS target dr", "endpoint = ", "endpoint: AWS cannot be reached at http://127.0.0.1:1"),
			},
			{
				// Nothing was created by the failed attempts.
				Config: cfg,
				Check: func(*terraform.State) error {
					all, err := srv.Client.AWSTargets().ListAll(context.Background())
					if err != nil {
						return err
					}
					if len(all) != 0 {
						return fmt.Errorf("failed creates left %d AWS targets on the server", len(all))
					}
					return nil
				},
			},
		},
	})
}

func TestAccAWSTargetResource_invalid(t *testing.T) {
	step := func(attrs string, want ...string) resource.TestStep {
		return invalidConfigStep("haven_aws_target", map[string]string{"name": `"dr"`, "region": `"us-east-1"`, "credentials": `"ambient"`}, attrs, want...)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		Steps: []resource.TestStep{
			step(`region = "us-east"`, `Attribute region must be an AWS region name such as us-east-1 or eu-west-3, got "us-east"`),
			step(`region = "US-EAST-1"`, "Attribute region must be an AWS region name"),
			step(`credentials = "keys"`, "Attribute credentials value must be one of"),
			step(`credentials = "access_key"`, `Attribute access_key_id is required with credentials "access_key"`),
			step(`credentials = "access_key"
access_key_id = "AKIAHAVENPROVIDER001"`, "Attribute secret_access_key is required when access_key_id is set"),
			step(`access_key_id = "AKIAHAVENPROVIDER001"
secret_access_key = "s"`, `Attribute access_key_id applies only to credentials "access_key" or "assume_role"`),
			step(`credentials = "assume_role"`, `Attribute role_arn is required with credentials "assume_role"`),
			step(`credentials = "assume_role"
role_arn = "haven-dr"`, "Attribute role_arn must be an IAM role ARN such as arn:aws:iam::123456789012:role/haven-dr"),
			step(`role_arn = "arn:aws:iam::123456789012:role/haven-dr"`, `Attribute role_arn applies only to credentials "assume_role"`),
			step(`endpoint = "moto:5000"`, "Attribute endpoint must be an http or https URL"),
			step(`vpc_id = "default"`, "Attribute vpc_id must be a VPC id"),
			step(`subnet_id = "subnet-0123456789abcdef0"`, "Attribute vpc_id is required with subnet_id"),
			step(`vpc_id = "vpc-0123456789abcdef0"
security_group_ids = ["default"]`, "must be a security group id"),
			step(`security_group_ids = ["sg-0123456789abcdef0"]`, "Attribute vpc_id is required with security_group_ids"),
			step(`group = "team a"`, "Attribute group must start with a letter or digit"),
		},
	})
}
