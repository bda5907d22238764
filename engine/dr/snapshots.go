package dr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// EC2Snapshots is the part of the EC2 client that manages the copies'
// snapshots (*ec2.Client is one).
type EC2Snapshots interface {
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, opts ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
}

// WaitCompleted waits until AWS reports snapshot id completed (a snapshot
// written with the EBS direct APIs completes asynchronously after
// CompleteSnapshot), for at most timeout.
func WaitCompleted(ctx context.Context, client EC2Snapshots, id string, timeout time.Duration) error {
	for {
		out, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		if err != nil {
			return fmt.Errorf("describing snapshot %s: %w", id, err)
		}
		if len(out.Snapshots) != 1 {
			return fmt.Errorf("snapshot %s: not found", id)
		}
		switch s := out.Snapshots[0]; s.State {
		case ec2types.SnapshotStateCompleted:
			return nil
		case ec2types.SnapshotStateError, ec2types.SnapshotStateRecoverable:
			return fmt.Errorf("snapshot %s (%s): %w", id, aws.ToString(s.StateMessage), ErrSnapshotFailed)
		}
		if timeout <= 0 {
			return fmt.Errorf("snapshot %s did not complete in time", id)
		}
		step := min(timeout, 2*time.Second)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
		}
		timeout -= step
	}
}

// DeleteSnapshot deletes a copy's snapshot; one already gone is not an
// error, so a cleanup can run twice.
func DeleteSnapshot(ctx context.Context, client EC2Snapshots, id string) error {
	_, err := client.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "InvalidSnapshot.NotFound" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting snapshot %s: %w", id, err)
	}
	return nil
}
