package dr

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// InstanceTypes is the part of the EC2 client that picks instance types.
type InstanceTypes interface {
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
}

// AutoFamilies are the families an `auto` instance type is picked from,
// the preferred first: general purpose, then compute and memory
// optimized, then burstable (Intel and Graviton alike; the architecture
// decides). A VM's steady load is unknown, so the pick
// leans to families with a fixed share of CPU.
var AutoFamilies = []string{"m6i", "m6g", "m5", "c6i", "c6g", "c5", "r6i", "r6g", "r5", "t3", "t4g"}

// PickInstanceType picks the instance type for a VM of cpus CPUs and
// memoryMiB of memory among those the region offers for architecture
// (x86_64 or arm64): the one with the fewest vCPUs, then the least memory,
// that has at least as many of both, by AutoFamilies' order among equals.
// The reason says what was picked and why, for the plan's record.
func PickInstanceType(ctx context.Context, client InstanceTypes, cpus int, memoryMiB int64, architecture string) (string, string, error) {
	if cpus <= 0 || memoryMiB <= 0 {
		return "", "", &FieldError{"instance_type", fmt.Sprintf("auto needs the VM's CPUs and memory (got %d CPUs, %d MiB)", cpus, memoryMiB)}
	}
	if architecture == "" {
		architecture = "x86_64"
	}
	type candidate struct {
		name   string
		vcpus  int
		mem    int64
		family int
	}
	var best *candidate
	p := ec2.NewDescribeInstanceTypesPaginator(client, &ec2.DescribeInstanceTypesInput{Filters: []ec2types.Filter{
		{Name: aws.String("processor-info.supported-architecture"), Values: []string{architecture}},
		{Name: aws.String("bare-metal"), Values: []string{"false"}},
	}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", "", fmt.Errorf("listing instance types: %w", err)
		}
		for _, it := range page.InstanceTypes {
			name := string(it.InstanceType)
			family, _, _ := strings.Cut(name, ".")
			rank := slices.Index(AutoFamilies, family)
			if rank < 0 || it.VCpuInfo == nil || it.MemoryInfo == nil || aws.ToBool(it.BareMetal) ||
				it.ProcessorInfo != nil && !slices.Contains(it.ProcessorInfo.SupportedArchitectures, ec2types.ArchitectureType(architecture)) {
				continue
			}
			c := candidate{name, int(aws.ToInt32(it.VCpuInfo.DefaultVCpus)), aws.ToInt64(it.MemoryInfo.SizeInMiB), rank}
			if c.vcpus < cpus || c.mem < memoryMiB {
				continue
			}
			if best == nil || c.vcpus < best.vcpus || c.vcpus == best.vcpus && (c.mem < best.mem || c.mem == best.mem && c.family < best.family) {
				best = &c
			}
		}
	}
	if best == nil {
		return "", "", &FieldError{"instance_type", fmt.Sprintf("no %s instance type of the families %s has %d vCPUs and %d MiB; name one", architecture, strings.Join(AutoFamilies, ", "), cpus, memoryMiB)}
	}
	return best.name, fmt.Sprintf("auto: %s has %d vCPUs and %d MiB, the smallest of %s that holds the VM's %d CPUs and %d MiB",
		best.name, best.vcpus, best.mem, strings.Join(AutoFamilies, ", "), cpus, memoryMiB), nil
}
