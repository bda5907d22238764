package testparts

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// MotoBlockSize is the size in bytes of an EBS block on the moto server, as
// on AWS: the EBS direct APIs put and get whole blocks of this size, and EC2
// volumes there hold their data in blocks of this size.
const MotoBlockSize = 512 << 10

// MotoEBSClient returns a client of the EBS direct APIs for the moto server at
// endpoint.
func MotoEBSClient(endpoint string) *ebs.Client {
	return ebs.New(ebs.Options{
		Region:       MotoRegion,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(MotoAccessKeyID, MotoSecretAccessKey, ""),
	})
}

// MotoEC2Client returns an EC2 client for the moto server at endpoint.
func MotoEC2Client(endpoint string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       MotoRegion,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(MotoAccessKeyID, MotoSecretAccessKey, ""),
	})
}

// MotoSubnet creates a VPC of its own with one subnet in the first
// availability zone of MotoRegion, on the moto server at endpoint, and
// returns the subnet's ID and address range, for instances that need a
// subnet and a private IP in it. Neither is deleted: moto keeps them in
// memory, which goes when the server stops.
func MotoSubnet(t testing.TB, endpoint string) (string, netip.Prefix) {
	t.Helper()
	_, subnet, prefix := motoNetwork(t, endpoint)
	return subnet, prefix
}

// MotoNetwork is MotoSubnet that also returns the VPC's ID: a network for
// a DR plan's test or a target's defaults. Each call makes a VPC of its
// own with the same address range, as an isolated test VPC mirrors
// production.
func MotoNetwork(t testing.TB, endpoint string) (vpc, subnet string) {
	t.Helper()
	vpc, subnet, _ = motoNetwork(t, endpoint)
	return vpc, subnet
}

func motoNetwork(t testing.TB, endpoint string) (string, string, netip.Prefix) {
	t.Helper()
	c := MotoEC2Client(endpoint)
	vpc, err := c.CreateVpc(t.Context(), &ec2.CreateVpcInput{CidrBlock: aws.String("10.42.0.0/16")})
	if err != nil {
		t.Fatalf("moto: CreateVpc: %v", err)
	}
	prefix := netip.MustParsePrefix("10.42.1.0/24")
	subnet, err := c.CreateSubnet(t.Context(), &ec2.CreateSubnetInput{
		VpcId:            vpc.Vpc.VpcId,
		CidrBlock:        aws.String(prefix.String()),
		AvailabilityZone: aws.String(MotoRegion + "a"),
	})
	if err != nil {
		t.Fatalf("moto: CreateSubnet: %v", err)
	}
	return aws.ToString(vpc.Vpc.VpcId), aws.ToString(subnet.Subnet.SubnetId), prefix
}

// MotoTerminateAt terminates the running instances whose private address
// is ip (in one of subnets, when given) on the moto server at endpoint: a
// machine that dies while a failover or drill checks it.
func MotoTerminateAt(ctx context.Context, endpoint, ip string, subnets ...string) error {
	c := MotoEC2Client(endpoint)
	filters := []ec2types.Filter{
		{Name: aws.String("private-ip-address"), Values: []string{ip}},
		{Name: aws.String("instance-state-name"), Values: []string{"running"}}}
	if len(subnets) > 0 {
		filters = append(filters, ec2types.Filter{Name: aws.String("subnet-id"), Values: subnets})
	}
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: filters})
	if err != nil {
		return err
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(in.InstanceId)}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// MotoVolumeBlock returns block index (MotoBlockSize bytes) of the EC2 volume
// volumeID on the moto server at endpoint, as the guest that the volume is
// attached to would read it: a block never written, by the guest or by the
// snapshot that the volume was created from, reads as zeros. It fails if the
// volume does not exist or the index is out of its range.
//
// This goes through a route of Haven's moto plug-in, not an AWS API: AWS has
// no API to read a volume.
func MotoVolumeBlock(ctx context.Context, endpoint, volumeID string, index int32) ([]byte, error) {
	resp, err := volumeBlockRequest(ctx, http.MethodGet, endpoint, volumeID, index, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading block %d of volume %s: %v", index, volumeID, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if len(body) != MotoBlockSize {
			return nil, fmt.Errorf("block %d of volume %s has %d bytes, want %d", index, volumeID, len(body), MotoBlockSize)
		}
		return body, nil
	case resp.StatusCode == http.StatusNotFound && resp.Header.Get("X-Haven-Error") == "NoSuchBlock":
		return make([]byte, MotoBlockSize), nil
	default:
		return nil, fmt.Errorf("reading block %d of volume %s: %s: %s", index, volumeID, resp.Status, body)
	}
}

// MotoWriteVolumeBlock writes data (MotoBlockSize bytes) to block index of the
// EC2 volume volumeID on the moto server at endpoint, as a guest writing to
// its disk after failover would. An EC2 snapshot of the volume taken later
// holds the block.
//
// This goes through a route of Haven's moto plug-in, not an AWS API.
func MotoWriteVolumeBlock(ctx context.Context, endpoint, volumeID string, index int32, data []byte) error {
	resp, err := volumeBlockRequest(ctx, http.MethodPut, endpoint, volumeID, index, data)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("writing block %d of volume %s: %s: %s", index, volumeID, resp.Status, body)
	}
	return nil
}

func volumeBlockRequest(ctx context.Context, method, endpoint, volumeID string, index int32, data []byte) (*http.Response, error) {
	u := endpoint + "/_haven/volumes/" + url.PathEscape(volumeID) + "/blocks/" + strconv.Itoa(int(index))
	var body io.Reader
	if data != nil {
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if data != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s block %d of volume %s: %v", method, index, volumeID, err)
	}
	return resp, nil
}

// MotoThrottlePuts makes the moto server at endpoint answer the next n
// PutSnapshotBlock calls of block index of snapshot id with AWS's
// ThrottlingException (a route of Haven's moto plug-in).
func MotoThrottlePuts(ctx context.Context, endpoint, snapshotID string, index int32, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/_haven/throttle/PutSnapshotBlock/%s/%d", endpoint, snapshotID, index),
		strings.NewReader(strconv.Itoa(n)))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("moto: throttling puts: %s", resp.Status)
	}
	return nil
}
