package dr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// TestThrottledPutsAreRetried: a block put that EBS throttles four times
// in a row goes through with the DR jobs' retryer, where the SDK's
// default retryer (three attempts) gives up.
func TestThrottledPutsAreRetried(t *testing.T) {
	endpoint := testparts.Moto(t)
	defer func(b time.Duration) { retryMaxBackoff = b }(retryMaxBackoff)
	retryMaxBackoff = 20 * time.Millisecond
	ctx := context.Background()
	block := bytes.Repeat([]byte{7}, testparts.MotoBlockSize)
	sum := sha256.Sum256(block)
	put := func(c *ebs.Client, snapshot string) error {
		_, err := c.PutSnapshotBlock(ctx, &ebs.PutSnapshotBlockInput{SnapshotId: aws.String(snapshot), BlockIndex: aws.Int32(0),
			BlockData: bytes.NewReader(block), DataLength: aws.Int32(int32(len(block))),
			Checksum: aws.String(base64.StdEncoding.EncodeToString(sum[:])), ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256})
		return err
	}
	for _, c := range []struct {
		name    string
		client  *ebs.Client
		succeed bool
	}{
		{"the SDK's default retryer", testparts.MotoEBSClient(endpoint), false},
		{"the DR retryer", ebs.New(ebs.Options{}, func(o *ebs.Options) {
			*o = testparts.MotoEBSClient(endpoint).Options()
			o.Retryer = drRetryer()
		}), true},
	} {
		snap, err := c.client.StartSnapshot(ctx, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1)})
		if err != nil {
			t.Fatal(err)
		}
		if err := testparts.MotoThrottlePuts(ctx, endpoint, aws.ToString(snap.SnapshotId), 0, 4); err != nil {
			t.Fatal(err)
		}
		err = put(c.client, aws.ToString(snap.SnapshotId))
		var throttled interface{ ErrorCode() string }
		switch {
		case c.succeed && err != nil:
			t.Errorf("%s: a put throttled four times failed: %v", c.name, err)
		case !c.succeed && (err == nil || !errors.As(err, &throttled) || throttled.ErrorCode() != "ThrottlingException"):
			t.Errorf("%s: a put throttled four times: %v, want ThrottlingException", c.name, err)
		}
	}
}
