package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// AWSTargetSecretContext binds sealed AWS target secret access keys to
// their purpose.
const AWSTargetSecretContext = "haven/aws-target/secret-access-key"

// AWSCheckTimeout bounds the checks of one AWS target.
const AWSCheckTimeout = 30 * time.Second

// AWSRoleSessionName names the sessions of the roles Haven assumes, as
// CloudTrail shows them.
const AWSRoleSessionName = "haven"

// AWS builds the AWS configuration of a target: its region, its endpoint
// for every service, and its credentials (the SDK's default chain on this
// host, the target's access key, or a role assumed from either). Nothing
// is sent to AWS yet: credentials are fetched by the first call.
func AWS(ctx context.Context, spec api.AWSTargetSpec, secret string) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(spec.Region)}
	if spec.Endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(spec.Endpoint))
	}
	if spec.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(spec.AccessKeyID, secret, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if spec.Credentials == api.AWSCredentialsAssumeRole {
		// The STS client signs with the base credentials; the cache
		// renews the role's before they expire.
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), spec.RoleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = AWSRoleSessionName
				if spec.ExternalID != "" {
					o.ExternalID = aws.String(spec.ExternalID)
				}
			}))
	}
	return cfg, nil
}

// CheckAWSTarget proves a target for real and returns the account its
// credentials act in: it fetches the credentials (assuming the role, if
// any), asks STS GetCallerIdentity who they are, and when the target names
// a default VPC, subnet or security groups, that each exists in the region
// and that the subnet and groups belong to the VPC. Each failure is a 422
// on the field to fix; no message holds the secret.
func CheckAWSTarget(ctx context.Context, spec api.AWSTargetSpec, secret string) (accountID string, err error) {
	ctx, cancel := context.WithTimeout(ctx, AWSCheckTimeout)
	defer cancel()
	defer func() {
		var e *api.Error
		if secret != "" && errors.As(err, &e) {
			e.Message = strings.ReplaceAll(e.Message, secret, "[secret]")
		}
	}()
	cfg, err := AWS(ctx, spec, secret)
	if err != nil {
		return "", api.Unprocessable("credentials", "%v", err)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		if e := unreachable(spec, err); e != nil {
			return "", e
		}
		switch spec.Credentials {
		case api.AWSCredentialsAssumeRole:
			return "", api.Unprocessable("credentials", "assuming role %s failed: %s", spec.RoleARN, awsReason(err))
		case api.AWSCredentialsAmbient:
			return "", api.Unprocessable("credentials", "the Haven server host has no AWS credentials of its own "+
				"(environment, shared configuration files, container or instance role): %s", awsReason(err))
		}
		return "", api.Unprocessable("credentials", "the access key cannot be used: %s", awsReason(err))
	}
	who, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		if e := unreachable(spec, err); e != nil {
			return "", e
		}
		return "", api.Unprocessable("credentials", "AWS refused the credentials: %s", awsReason(err))
	}
	accountID = aws.ToString(who.Account)
	where := fmt.Sprintf("in region %s of account %s", spec.Region, accountID)
	if spec.VPCID == "" {
		return accountID, nil
	}
	client := ec2.NewFromConfig(cfg)
	vpcs, err := client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{spec.VPCID}})
	switch {
	case awsCode(err) == "InvalidVpcID.NotFound" || err == nil && len(vpcs.Vpcs) == 0:
		return "", api.Unprocessable("vpc_id", "VPC %s does not exist %s", spec.VPCID, where)
	case err != nil:
		return "", api.Unprocessable("vpc_id", "VPC %s cannot be checked: %s", spec.VPCID, awsReason(err))
	}
	if spec.SubnetID != "" {
		subnets, err := client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{spec.SubnetID}})
		switch {
		case awsCode(err) == "InvalidSubnetID.NotFound" || err == nil && len(subnets.Subnets) == 0:
			return "", api.Unprocessable("subnet_id", "subnet %s does not exist %s", spec.SubnetID, where)
		case err != nil:
			return "", api.Unprocessable("subnet_id", "subnet %s cannot be checked: %s", spec.SubnetID, awsReason(err))
		}
		if in := aws.ToString(subnets.Subnets[0].VpcId); in != spec.VPCID {
			return "", api.Unprocessable("subnet_id", "subnet %s is in VPC %s, not in vpc_id %s", spec.SubnetID, in, spec.VPCID)
		}
	}
	// One group per call, so that a missing one is named whatever AWS's
	// message says.
	for _, id := range spec.SecurityGroupIDs {
		groups, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
		switch {
		case awsCode(err) == "InvalidGroup.NotFound" || err == nil && len(groups.SecurityGroups) == 0:
			return "", api.Unprocessable("security_group_ids", "security group %s does not exist %s", id, where)
		case err != nil:
			return "", api.Unprocessable("security_group_ids", "security group %s cannot be checked: %s", id, awsReason(err))
		}
		if in := aws.ToString(groups.SecurityGroups[0].VpcId); in != spec.VPCID {
			return "", api.Unprocessable("security_group_ids", "security group %s belongs to VPC %s, not to vpc_id %s", id, in, spec.VPCID)
		}
	}
	return accountID, nil
}

// unreachable is the 422 for a request that never got an answer: on the
// endpoint when the target overrides it, else on the region.
func unreachable(spec api.AWSTargetSpec, err error) *api.Error {
	var send *smithyhttp.RequestSendError
	if !errors.As(err, &send) {
		return nil
	}
	if spec.Endpoint != "" {
		return api.Unprocessable("endpoint", "AWS cannot be reached at %s: %v", spec.Endpoint, send.Err)
	}
	return api.Unprocessable("region", "AWS cannot be reached in region %s: %v", spec.Region, send.Err)
}

// awsReason is what AWS said about a failed call: its error code, message
// and HTTP status when it answered, else the whole error. The status
// still tells a refusal (403) when an answer's error body cannot be read
// (the SDK's UnknownError).
func awsReason(err error) string {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err.Error()
	}
	reason := ae.ErrorCode() + ": " + ae.ErrorMessage()
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		reason += fmt.Sprintf(" (HTTP %d)", re.HTTPStatusCode())
	}
	return reason
}

func awsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// StoredAWSTarget builds the AWS configuration of a registered target
// with its sealed secret, for the jobs that work in it.
func StoredAWSTarget(ctx context.Context, d *db.DB, master *keys.MasterKey, id string) (aws.Config, api.AWSTarget, error) {
	o, err := d.Get(ctx, db.AWSTargets, id)
	if errors.Is(err, db.ErrNotFound) {
		return aws.Config{}, api.AWSTarget{}, api.NotFound("AWS target", id)
	}
	if err != nil {
		return aws.Config{}, api.AWSTarget{}, err
	}
	t := api.AWSTarget{Meta: api.Meta{ID: o.ID, Version: o.Version}, HasSecret: o.SealedSecret != nil}
	if err := json.Unmarshal(o.Spec, &t.AWSTargetSpec); err != nil {
		return aws.Config{}, t, err
	}
	var secret []byte
	if o.SealedSecret != nil {
		if secret, err = master.Open(o.SealedSecret, AWSTargetSecretContext); err != nil {
			return aws.Config{}, t, fmt.Errorf("AWS target %s: %w", o.ID, err)
		}
	}
	cfg, err := AWS(ctx, t.AWSTargetSpec, string(secret))
	return cfg, t, err
}
