package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

func (s *Store) opMsg(op, name string) string {
	return fmt.Sprintf("s3 store: %s %q in bucket %q", op, name, s.bucket)
}

// errorCode returns the S3 error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// problems explains the error codes that mean the storage is set up wrongly,
// in words an operator can act on. HEAD requests have no error body, so their
// bare status codes ("Forbidden", "MovedPermanently") are listed too.
var problems = map[string]string{
	"NoSuchBucket":                       "the bucket does not exist (check the bucket name, region and endpoint)",
	"AccessDenied":                       "access denied: the credentials are not allowed to do this on the bucket",
	"Forbidden":                          "access denied: the credentials are not allowed to do this on the bucket",
	"AllAccessDisabled":                  "access denied: all access to the bucket is disabled",
	"AccountProblem":                     "access denied: the account has a problem that prevents this operation",
	"InvalidAccessKeyId":                 "the access key ID is not known to the service (wrong key, or a key for another endpoint)",
	"SignatureDoesNotMatch":              "the request signature was rejected: the secret access key does not match the access key ID",
	"ExpiredToken":                       "the session credentials have expired",
	"InvalidToken":                       "the session token is invalid",
	"TokenRefreshRequired":               "the session credentials have expired",
	"PermanentRedirect":                  "the bucket is in another region, or needs another endpoint",
	"MovedPermanently":                   "the bucket is in another region, or needs another endpoint",
	"AuthorizationHeaderMalformed":       "the bucket is in another region than the one configured",
	"IllegalLocationConstraintException": "the bucket is in another region than the one configured",
	"InvalidBucketName":                  "the bucket name is not valid",
	"InvalidObjectState":                 "the object is in an archive storage class and must be restored first",
	"ObjectNotInActiveTierError":         "the object is in an archive storage class and must be restored first",
	"InvalidStorageClass":                "the service does not support the configured storage class",
}

// transientCodes are error codes worth retrying that the SDK's own list lacks.
var transientCodes = map[string]bool{
	// The SDK corrects its clock offset from every response, so the next
	// attempt is signed with the right time.
	"RequestTimeTooSkewed": true,
	"InternalError":        true,
	"ServiceUnavailable":   true,
}

var sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// classify turns an SDK error into a classified store error whose message names
// the operation, the object and the bucket, and explains known problems. The
// secret key appears nowhere in SDK errors, and nothing here adds it.
func (s *Store) classify(op, name string, err error) error {
	msg := s.opMsg(op, name)
	code := errorCode(err)
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", msg, err)
	case code == "NoSuchKey" || code == "NotFound":
		return store.Permanent(fmt.Errorf("%s: %w", msg, store.ErrNotFound))
	case problems[code] != "":
		return store.Permanent(fmt.Errorf("%s: %s: %w", msg, problems[code], err))
	case transientCodes[code] || httpStatus(err) == http.StatusTooManyRequests:
		return store.Transient(fmt.Errorf("%s: %w", msg, err))
	}
	var signErr *v4.SigningError
	if errors.As(err, &signErr) {
		return store.Permanent(fmt.Errorf("%s: no usable credentials (configure an access key, or ambient AWS credentials): %w", msg, err))
	}
	if sdkRetryables.IsErrorRetryable(err) == aws.TrueTernary {
		return store.Transient(fmt.Errorf("%s: %w", msg, err))
	}
	return store.Permanent(fmt.Errorf("%s: %w", msg, err))
}
