package dr_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// TestPickInstanceType: `auto` picks the smallest instance type of the
// preferred families that holds the VM's CPUs and memory, from the
// region's offer, says why, and refuses a VM nothing holds.
func TestPickInstanceType(t *testing.T) {
	client := testparts.MotoEC2Client(testparts.Moto(t))
	ctx := context.Background()
	for _, c := range []struct {
		cpus int
		mem  int64
		arch string
		want string
	}{
		{2, 8192, "", "m6i.large"},  // 2 vCPUs, 8 GiB exactly
		{2, 8193, "", "r6i.large"},  // 2 vCPUs, more memory: memory optimized
		{3, 4096, "", "c6i.xlarge"}, // 4 vCPUs is the next step; c has the least memory
		{1, 512, "", "t3.nano"},     // only a burstable type is that small
		{4, 16384, "arm64", "m6g.xlarge"},
	} {
		got, why, err := dr.PickInstanceType(ctx, client, c.cpus, c.mem, c.arch)
		if err != nil {
			t.Errorf("%d CPUs %d MiB %s: %v", c.cpus, c.mem, c.arch, err)
			continue
		}
		t.Logf("%d CPUs %d MiB %s: %s (%s)", c.cpus, c.mem, c.arch, got, why)
		if got != c.want || !strings.Contains(why, got) {
			t.Errorf("%d CPUs %d MiB %s: %s (%s), want %s", c.cpus, c.mem, c.arch, got, why, c.want)
		}
	}
	var fe *dr.FieldError
	if _, _, err := dr.PickInstanceType(ctx, client, 100000, 1, ""); !errors.As(err, &fe) || fe.Field != "instance_type" {
		t.Errorf("a VM no type holds: %v", err)
	}
}
