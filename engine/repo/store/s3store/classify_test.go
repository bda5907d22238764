package s3store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// TestClassify covers the failures moto cannot produce (throttling, 5xx,
// network and credential trouble) with errors shaped as the SDK returns them.
func TestClassify(t *testing.T) {
	s := &Store{bucket: "b"}
	response := func(status int, code string) error {
		return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      &smithy.GenericAPIError{Code: code, Message: "from the service"},
			},
		}}
	}
	sendFailure := func(err error) error {
		return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &smithyhttp.RequestSendError{Err: err}}
	}
	for _, tc := range []struct {
		name      string
		err       error
		transient bool
		text      string
	}{
		{"throttled", response(503, "SlowDown"), true, ""},
		{"internal error", response(500, "InternalError"), true, ""},
		{"bad gateway", response(502, "BadGateway"), true, ""},
		{"too many requests", response(429, "TooManyRequests"), true, ""},
		{"request timeout", response(400, "RequestTimeout"), true, ""},
		{"clock skew", response(403, "RequestTimeTooSkewed"), true, ""},
		{"connection refused", sendFailure(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true, ""},
		{"connection reset", sendFailure(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true, ""},
		{"access denied", response(403, "AccessDenied"), false, "access denied"},
		{"no such bucket", response(404, "NoSuchBucket"), false, "bucket does not exist"},
		{"wrong region", response(301, "PermanentRedirect"), false, "another region"},
		{"bad request", response(400, "InvalidArgument"), false, ""},
		{"not implemented", response(501, "NotImplemented"), false, ""},
		{"no credentials", &smithy.OperationError{Err: &v4.SigningError{Err: errors.New("failed to retrieve credentials: no EC2 IMDS role found")}}, false, "no usable credentials"},
	} {
		got := s.classify("put", "packs/p", tc.err)
		if store.IsTransient(got) != tc.transient || !errors.Is(got, tc.err) || !strings.Contains(got.Error(), tc.text) ||
			!strings.Contains(got.Error(), `put "packs/p" in bucket "b"`) {
			t.Errorf("%s: classify = %v (transient %v), want transient %v mentioning %q", tc.name, got, store.IsTransient(got), tc.transient, tc.text)
		}
	}

	got := s.classify("get", "p", response(404, "NoSuchKey"))
	if !errors.Is(got, store.ErrNotFound) || store.IsTransient(got) {
		t.Errorf("NoSuchKey: classify = %v", got)
	}
	cancelled := fmt.Errorf("request canceled: %w", context.Canceled)
	got = s.classify("get", "p", sendFailure(cancelled))
	if !errors.Is(got, context.Canceled) || store.IsTransient(got) {
		t.Errorf("cancelled: classify = %v (transient %v)", got, store.IsTransient(got))
	}
}
