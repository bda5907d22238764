package dr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// ErrLeftovers means a cleanup could not remove everything; the
// resources it returns are what is left.
var ErrLeftovers = errors.New("resources are left behind")

// Cleanup removes everything a run created, found by its TagRun tag, not
// by a record (so it also finds what a crashed attempt made before it
// could record it): it terminates the instances and waits until they are
// gone (for at most wait), deregisters the images, and deletes the
// volumes left and the snapshots a failback made. The DR copies the
// images were registered over are not touched.
// Then it looks again and returns what is still there, with ErrLeftovers
// when that is anything. It can run any number of times.
func Cleanup(ctx context.Context, client EC2, run string, wait time.Duration, poll time.Duration) ([]Resource, error) {
	if run == "" {
		return nil, &FieldError{"run", "must not be empty"}
	}
	if poll <= 0 {
		poll = 5 * time.Second
	}
	var errs []error
	instances, err := runInstances(ctx, client, run)
	if err != nil {
		return nil, err
	}
	if len(instances) > 0 {
		ids := make([]string, len(instances))
		for i, r := range instances {
			ids[i] = r.ID
		}
		// One instance EC2 refuses to terminate (termination protection)
		// fails the whole call: then each goes alone, and only those
		// accepted are waited for.
		accepted := ids
		if _, err := client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
			accepted = nil
			for _, id := range ids {
				if _, err := client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
					errs = append(errs, fmt.Errorf("terminating %s: %w", id, err))
					continue
				}
				accepted = append(accepted, id)
			}
		}
		deadline := time.Now().Add(wait)
		for len(accepted) > 0 {
			left, err := runInstances(ctx, client, run)
			if err != nil {
				return nil, err
			}
			accepted = slices.DeleteFunc(accepted, func(id string) bool {
				return !slices.ContainsFunc(left, func(r Resource) bool { return r.ID == id })
			})
			if len(accepted) == 0 || time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(poll):
			}
		}
	}
	images, err := runImages(ctx, client, run)
	if err != nil {
		return nil, err
	}
	for _, im := range images {
		if _, err := client.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(im.ID)}); err != nil {
			errs = append(errs, fmt.Errorf("deregistering %s: %w", im.ID, err))
		}
	}
	volumes, err := runVolumes(ctx, client, run)
	if err != nil {
		return nil, err
	}
	for _, v := range volumes {
		if _, err := client.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(v.ID)}); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", v.ID, err))
		}
	}
	snapshots, err := runSnapshots(ctx, client, run)
	if err != nil {
		return nil, err
	}
	for _, sn := range snapshots {
		if err := DeleteSnapshot(ctx, client, sn.ID); err != nil {
			errs = append(errs, err)
		}
	}
	left, err := Inventory(ctx, client, run)
	if err != nil {
		return nil, err
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("%w: %d after cleanup", ErrLeftovers, len(left)))
	}
	return left, errors.Join(errs...)
}

// Inventory lists what a run has in AWS: instances not terminated,
// images, volumes, and snapshots (a failback's).
func Inventory(ctx context.Context, client EC2, run string) ([]Resource, error) {
	var out []Resource
	for _, list := range []func(context.Context, EC2, string) ([]Resource, error){runInstances, runImages, runVolumes, runSnapshots} {
		rs, err := list(ctx, client, run)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

func runFilter(run string) ec2types.Filter {
	return ec2types.Filter{Name: aws.String("tag:" + TagRun), Values: []string{run}}
}

func machineTag(tags []ec2types.Tag) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == TagMachine {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func runInstances(ctx context.Context, client EC2, run string) ([]Resource, error) {
	var out []Resource
	p := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{runFilter(run),
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "shutting-down", "stopping", "stopped"}}}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the run's instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				out = append(out, Resource{Kind: "instance", ID: aws.ToString(in.InstanceId), Machine: machineTag(in.Tags)})
			}
		}
	}
	return out, nil
}

func runImages(ctx context.Context, client EC2, run string) ([]Resource, error) {
	page, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []ec2types.Filter{runFilter(run)}})
	if err != nil {
		return nil, fmt.Errorf("listing the run's images: %w", err)
	}
	var out []Resource
	for _, im := range page.Images {
		if im.State != ec2types.ImageStateDeregistered {
			out = append(out, Resource{Kind: "image", ID: aws.ToString(im.ImageId), Machine: machineTag(im.Tags)})
		}
	}
	return out, nil
}

func runVolumes(ctx context.Context, client EC2, run string) ([]Resource, error) {
	var out []Resource
	p := ec2.NewDescribeVolumesPaginator(client, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{runFilter(run)}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the run's volumes: %w", err)
		}
		for _, v := range page.Volumes {
			if v.State != ec2types.VolumeStateDeleted && v.State != ec2types.VolumeStateDeleting {
				out = append(out, Resource{Kind: "volume", ID: aws.ToString(v.VolumeId), Machine: machineTag(v.Tags)})
			}
		}
	}
	return out, nil
}

// DropImages deregisters a run's images once its instances exist. The
// instances keep their volumes, and the DR copies the images were
// registered over can then be replaced: AWS refuses to delete a snapshot
// a registered image uses. It can run any number of times.
func DropImages(ctx context.Context, client EC2, run string) error {
	images, err := runImages(ctx, client, run)
	if err != nil {
		return err
	}
	for _, im := range images {
		if _, err := client.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(im.ID)}); err != nil {
			return fmt.Errorf("deregistering %s: %w", im.ID, err)
		}
	}
	return nil
}

func runSnapshots(ctx context.Context, client EC2, run string) ([]Resource, error) {
	var out []Resource
	p := ec2.NewDescribeSnapshotsPaginator(client, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: []ec2types.Filter{runFilter(run)}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the run's snapshots: %w", err)
		}
		for _, sn := range page.Snapshots {
			out = append(out, Resource{Kind: "snapshot", ID: aws.ToString(sn.SnapshotId), Machine: machineTag(sn.Tags)})
		}
	}
	return out, nil
}
