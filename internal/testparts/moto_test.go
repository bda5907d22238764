package testparts

import (
	"errors"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopMoto()
	StopSharedPostgres()
	os.Exit(code)
}

func TestMotoSharedAndBucket(t *testing.T) {
	ep := Moto(t)
	if again := Moto(t); again != ep {
		t.Fatalf("second Moto call returned %s, want the shared %s", again, ep)
	}
	b1, b2 := MotoBucket(t, ep), MotoBucket(t, ep)
	if b1 == b2 {
		t.Fatalf("MotoBucket returned %s twice", b1)
	}
	client := MotoS3Client(ep)
	if _, err := client.HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: aws.String(b1)}); err != nil {
		t.Fatalf("HeadBucket %s: %v", b1, err)
	}
}

func TestStopMotoRestarts(t *testing.T) {
	ep := Moto(t)
	StopMoto()
	if resp, err := http.Get(ep + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("moto still answers on %s after StopMoto", ep)
	}
	ep2 := Moto(t)
	resp, err := http.Get(ep2 + "/")
	if err != nil {
		t.Fatalf("restarted moto does not answer: %v", err)
	}
	resp.Body.Close()
}

func TestBucketName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	for _, name := range []string{"TestX", "Test/Sub_Case#01", "T" + string(make([]byte, 200)), "---", "Ünïcode/Ω"} {
		if b := bucketName(name); !valid.MatchString(b) {
			t.Errorf("bucketName(%q) = %q, not a valid bucket name", name, b)
		}
	}
}

func TestMotoWithAuth(t *testing.T) {
	m := MotoWithAuth(t)
	list := func(c Credentials) error {
		_, err := motoClient(m.Endpoint, c.AccessKeyID, c.SecretAccessKey).ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(m.Bucket)})
		return err
	}
	if err := list(m.Allowed); err != nil {
		t.Fatalf("allowed user cannot list: %v", err)
	}
	for _, tc := range []struct {
		name string
		c    Credentials
		code string
	}{
		{"denied user", m.Denied, "AccessDenied"},
		{"unknown key", Credentials{"AKIAUNKNOWNUNKNOWN00", "whatever"}, "InvalidAccessKeyId"},
		{"wrong secret", Credentials{m.Allowed.AccessKeyID, "wrong" + m.Allowed.SecretAccessKey}, "SignatureDoesNotMatch"},
	} {
		var ae smithy.APIError
		if err := list(tc.c); !errors.As(err, &ae) || ae.ErrorCode() != tc.code {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
}

func TestMissingMotoServerIsAnError(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := startMoto()
	if err == nil || !strings.Contains(err.Error(), "pip install 'moto[server]'") {
		t.Fatalf("startMoto without moto_server on PATH: got %v, want an error with the install hint", err)
	}
}
