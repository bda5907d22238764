package api

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Where an AWS target's credentials come from.
const (
	// AWSCredentialsAmbient is the AWS SDK's default chain on the server
	// host: environment, shared config files, container or instance role.
	AWSCredentialsAmbient = "ambient"
	// AWSCredentialsAccessKey is an access key given with the target.
	AWSCredentialsAccessKey = "access_key"
	// AWSCredentialsAssumeRole is a role assumed from the ambient
	// credentials, or from an access key when one is given.
	AWSCredentialsAssumeRole = "assume_role"
)

// AWSCredentialSources lists the accepted values of AWSTargetSpec.Credentials.
var AWSCredentialSources = []string{AWSCredentialsAmbient, AWSCredentialsAccessKey, AWSCredentialsAssumeRole}

// AWSTargetSpec is the writable part of an AWS target: an account and
// region that VMs are recovered into, the credentials that reach it, and
// the network that DR plans use unless they say otherwise.
type AWSTargetSpec struct {
	Name   string `json:"name"`
	Region string `json:"region"`
	// Credentials is one of AWSCredentialSources.
	Credentials string `json:"credentials"`
	// AccessKeyID is required with access_key credentials, and optional
	// with assume_role (the key the role is assumed from).
	AccessKeyID string `json:"access_key_id,omitempty"`
	// SecretAccessKey is write-only: stored sealed with the master key,
	// never returned.
	SecretAccessKey string `json:"secret_access_key,omitempty" api:"writeonly"`
	// RoleARN and ExternalID are the role to assume (assume_role only).
	RoleARN    string `json:"role_arn,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
	// Endpoint overrides the URL of every AWS service (tests use moto).
	Endpoint string `json:"endpoint,omitempty"`
	// VPCID, SubnetID and SecurityGroupIDs are the defaults of DR plans:
	// the subnet and the groups must belong to the VPC.
	VPCID            string   `json:"vpc_id,omitempty"`
	SubnetID         string   `json:"subnet_id,omitempty"`
	SecurityGroupIDs []string `json:"security_group_ids,omitempty"`
	// Group is the administrative group, as a vCenter's.
	Group string `json:"group,omitempty"`
}

// AWSTargetRequest is the body of create and update calls.
type AWSTargetRequest struct {
	AWSTargetSpec
	Version *int64 `json:"version,omitempty"`
}

// AWSTarget is a registered AWS target as the server returns it. The
// server checks the target on create and update (who the credentials are,
// and that the default VPC, subnet and security groups exist together);
// Status says how the last check went.
type AWSTarget struct {
	Meta
	AWSTargetSpec
	HasSecret bool `json:"has_secret"`
	// AccountID is the AWS account the credentials act in, as STS
	// GetCallerIdentity answered at the last check.
	AccountID     string     `json:"account_id,omitempty"`
	Status        string     `json:"status"` // connected or error
	StatusMessage string     `json:"status_message,omitempty"`
	CheckedAt     *time.Time `json:"checked_at,omitempty"`
}

var (
	// AWSRegionPattern matches AWS region names: us-east-1, eu-west-3,
	// us-gov-west-1, cn-north-1, us-isob-east-1.
	AWSRegionPattern = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$`)
	// The role's path and name (at most 512 characters) are bounded by
	// length apart: a {1,512} repetition compiles to 512 copies, 8 ms of
	// every process's start (CLI, agent, provider).
	roleARNPattern = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`)
	// An external id is 2 to 1224 characters of these (STS AssumeRole).
	externalIDPattern = regexp.MustCompile(`^[A-Za-z0-9+=,.@:/_-]+$`)
	vpcIDPattern      = regexp.MustCompile(`^vpc-([0-9a-f]{8}|[0-9a-f]{17})$`)
	subnetIDPattern   = regexp.MustCompile(`^subnet-([0-9a-f]{8}|[0-9a-f]{17})$`)
	groupIDPattern    = regexp.MustCompile(`^sg-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

// Validate reports the first invalid field of an AWS target. A secret may
// be absent when keepSecret (an update keeping the stored one).
func (a *AWSTargetSpec) Validate(keepSecret bool) *Error {
	if err := validateName("name", a.Name); err != nil {
		return err
	}
	if a.Region == "" {
		return FieldError("region", "is required: an AWS region name such as us-east-1")
	}
	if !AWSRegionPattern.MatchString(a.Region) {
		return FieldError("region", "must be an AWS region name such as us-east-1 or eu-west-3, got %q", a.Region)
	}
	switch a.Credentials {
	case AWSCredentialsAmbient:
		if field := firstSet("access_key_id", a.AccessKeyID, "secret_access_key", a.SecretAccessKey); field != "" {
			return FieldError(field, "applies only to credentials %q or %q", AWSCredentialsAccessKey, AWSCredentialsAssumeRole)
		}
	case AWSCredentialsAccessKey, AWSCredentialsAssumeRole:
		if a.Credentials == AWSCredentialsAccessKey && a.AccessKeyID == "" {
			return FieldError("access_key_id", "is required with credentials %q", AWSCredentialsAccessKey)
		}
		if a.SecretAccessKey != "" && a.AccessKeyID == "" {
			return FieldError("access_key_id", "is required when secret_access_key is set")
		}
		if a.AccessKeyID != "" && a.SecretAccessKey == "" && !keepSecret {
			return FieldError("secret_access_key", "is required when access_key_id is set")
		}
	case "":
		return FieldError("credentials", "is required: %q, %q or %q", AWSCredentialsAmbient, AWSCredentialsAccessKey, AWSCredentialsAssumeRole)
	default:
		return FieldError("credentials", "must be %q, %q or %q, got %q", AWSCredentialsAmbient, AWSCredentialsAccessKey, AWSCredentialsAssumeRole, a.Credentials)
	}
	if a.Credentials == AWSCredentialsAssumeRole {
		if a.RoleARN == "" {
			return FieldError("role_arn", "is required with credentials %q", AWSCredentialsAssumeRole)
		}
		if _, role, _ := strings.Cut(a.RoleARN, ":role/"); !roleARNPattern.MatchString(a.RoleARN) || len(role) > 512 {
			return FieldError("role_arn", "must be an IAM role ARN such as arn:aws:iam::123456789012:role/haven-dr, got %q", a.RoleARN)
		}
		if a.ExternalID != "" && (len(a.ExternalID) < 2 || len(a.ExternalID) > 1224 || !externalIDPattern.MatchString(a.ExternalID)) {
			return FieldError("external_id", "must be 2 to 1224 letters, digits and +=,.@:/_- characters")
		}
	} else if field := firstSet("role_arn", a.RoleARN, "external_id", a.ExternalID); field != "" {
		return FieldError(field, "applies only to credentials %q", AWSCredentialsAssumeRole)
	}
	if a.Endpoint != "" {
		u, err := url.Parse(a.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return FieldError("endpoint", "must be an http or https URL, got %q", a.Endpoint)
		}
	}
	if a.VPCID != "" && !vpcIDPattern.MatchString(a.VPCID) {
		return FieldError("vpc_id", "must be a VPC id such as vpc-0a1b2c3d4e5f60718, got %q", a.VPCID)
	}
	if a.SubnetID != "" {
		if !subnetIDPattern.MatchString(a.SubnetID) {
			return FieldError("subnet_id", "must be a subnet id such as subnet-0a1b2c3d4e5f60718, got %q", a.SubnetID)
		}
		if a.VPCID == "" {
			return FieldError("vpc_id", "is required with subnet_id: the subnet must belong to it")
		}
	}
	for i, g := range a.SecurityGroupIDs {
		field := "security_group_ids[" + strconv.Itoa(i) + "]"
		if !groupIDPattern.MatchString(g) {
			return FieldError(field, "must be a security group id such as sg-0a1b2c3d4e5f60718, got %q", g)
		}
		if slices.Index(a.SecurityGroupIDs, g) < i {
			return FieldError(field, "%q is listed twice", g)
		}
	}
	if len(a.SecurityGroupIDs) > 0 && a.VPCID == "" {
		return FieldError("vpc_id", "is required with security_group_ids: the groups must belong to it")
	}
	if a.Group != "" {
		if err := validateName("group", a.Group); err != nil {
			return err
		}
	}
	return nil
}

// firstSet returns the first field of the (field, value) pairs whose value
// is not empty, or "".
func firstSet(pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			return pairs[i]
		}
	}
	return ""
}
