package api_test

import (
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestAWSTargetValidate: region names of every partition pass and others
// do not; each credential source needs its own attributes and refuses the
// others'; a subnet and security groups need their VPC. Each refusal names
// the field to fix.
func TestAWSTargetValidate(t *testing.T) {
	for _, region := range []string{"us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "us-isob-east-1", "il-central-1"} {
		s := api.AWSTargetSpec{Name: "dr", Region: region, Credentials: api.AWSCredentialsAmbient}
		if err := s.Validate(false); err != nil {
			t.Errorf("region %s: %v", region, err)
		}
	}
	const role = "arn:aws:iam::123456789012:role/dr/haven-dr"
	for name, tc := range map[string]struct {
		spec  api.AWSTargetSpec
		keep  bool
		field string
	}{
		"no region":                  {api.AWSTargetSpec{Credentials: "ambient"}, false, "region"},
		"region without number":      {api.AWSTargetSpec{Region: "us-east", Credentials: "ambient"}, false, "region"},
		"upper-case region":          {api.AWSTargetSpec{Region: "US-EAST-1", Credentials: "ambient"}, false, "region"},
		"availability zone":          {api.AWSTargetSpec{Region: "us-east-1a", Credentials: "ambient"}, false, "region"},
		"no credentials":             {api.AWSTargetSpec{Region: "us-east-1"}, false, "credentials"},
		"unknown credentials":        {api.AWSTargetSpec{Region: "us-east-1", Credentials: "profile"}, false, "credentials"},
		"ambient with a key":         {api.AWSTargetSpec{Region: "us-east-1", Credentials: "ambient", AccessKeyID: "AKIA1", SecretAccessKey: "s"}, false, "access_key_id"},
		"ambient with a role":        {api.AWSTargetSpec{Region: "us-east-1", Credentials: "ambient", RoleARN: role}, false, "role_arn"},
		"access key without id":      {api.AWSTargetSpec{Region: "us-east-1", Credentials: "access_key"}, false, "access_key_id"},
		"access key without secret":  {api.AWSTargetSpec{Region: "us-east-1", Credentials: "access_key", AccessKeyID: "AKIA1"}, false, "secret_access_key"},
		"access key keeping secret":  {api.AWSTargetSpec{Region: "us-east-1", Credentials: "access_key", AccessKeyID: "AKIA1"}, true, ""},
		"access key with role":       {api.AWSTargetSpec{Region: "us-east-1", Credentials: "access_key", AccessKeyID: "AKIA1", SecretAccessKey: "s", RoleARN: role}, false, "role_arn"},
		"role":                       {api.AWSTargetSpec{Region: "us-east-1", Credentials: "assume_role", RoleARN: role, ExternalID: "haven-prod"}, false, ""},
		"role from a key":            {api.AWSTargetSpec{Region: "us-east-1", Credentials: "assume_role", RoleARN: role, AccessKeyID: "AKIA1", SecretAccessKey: "s"}, false, ""},
		"role without arn":           {api.AWSTargetSpec{Region: "us-east-1", Credentials: "assume_role"}, false, "role_arn"},
		"role by name":               {api.AWSTargetSpec{Region: "us-east-1", Credentials: "assume_role", RoleARN: "haven-dr"}, false, "role_arn"},
		"role name too long":         {api.AWSTargetSpec{Region: "us-east-1", Credentials: "assume_role", RoleARN: "arn:aws:iam::123456789012:role/" + strings.Repeat("r", 513)}, false, "role_arn"},
		"longest role name":          {api.AWSTargetSpec{Region: "us-east-1", Credentials: "assume_role", RoleARN: "arn:aws:iam::123456789012:role/" + strings.Repeat("r", 512)}, false, ""},
		"user arn":                   {api.AWSTargetSpec{Region: "us-east-1", Credentials: "assume_role", RoleARN: "arn:aws:iam::123456789012:user/haven"}, false, "role_arn"},
		"external id of one char":    {api.AWSTargetSpec{Region: "us-east-1", Credentials: "assume_role", RoleARN: role, ExternalID: "x"}, false, "external_id"},
		"secret without key":         {api.AWSTargetSpec{Region: "us-east-1", Credentials: "assume_role", RoleARN: role, SecretAccessKey: "s"}, false, "access_key_id"},
		"endpoint without scheme":    {api.AWSTargetSpec{Region: "us-east-1", Credentials: "ambient", Endpoint: "127.0.0.1:5000"}, false, "endpoint"},
		"malformed vpc":              {api.AWSTargetSpec{Region: "us-east-1", Credentials: "ambient", VPCID: "vpc-xyz"}, false, "vpc_id"},
		"subnet without vpc":         {api.AWSTargetSpec{Region: "us-east-1", Credentials: "ambient", SubnetID: "subnet-0123456789abcdef0"}, false, "vpc_id"},
		"groups without vpc":         {api.AWSTargetSpec{Region: "us-east-1", Credentials: "ambient", SecurityGroupIDs: []string{"sg-01234567"}}, false, "vpc_id"},
		"malformed group":            {api.AWSTargetSpec{Region: "us-east-1", Credentials: "ambient", VPCID: "vpc-01234567", SecurityGroupIDs: []string{"sg-01234567", "default"}}, false, "security_group_ids[1]"},
		"group twice":                {api.AWSTargetSpec{Region: "us-east-1", Credentials: "ambient", VPCID: "vpc-01234567", SecurityGroupIDs: []string{"sg-01234567", "sg-01234567"}}, false, "security_group_ids[1]"},
		"network":                    {api.AWSTargetSpec{Region: "us-east-1", Credentials: "ambient", VPCID: "vpc-01234567", SubnetID: "subnet-0123456789abcdef0", SecurityGroupIDs: []string{"sg-01234567"}}, false, ""},
		"administrative group space": {api.AWSTargetSpec{Region: "us-east-1", Credentials: "ambient", Group: "team a"}, false, "group"},
	} {
		tc.spec.Name = "dr"
		err := tc.spec.Validate(tc.keep)
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v, want it valid", name, err)
		case tc.field != "" && (err == nil || err.Field != tc.field || err.Status != 400):
			t.Errorf("%s: %v, want a 400 on %s", name, err, tc.field)
		}
	}
}
