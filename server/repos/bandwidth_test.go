package repos

import (
	"testing"

	"golang.org/x/time/rate"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestUploadLimiterIsThePolicys: scheduled backups of one policy get one
// limiter whatever their storage, another policy gets its own, on-demand
// runs none; a changed cap reaches the limiter jobs already hold, and a
// lifted one frees them.
func TestUploadLimiterIsThePolicys(t *testing.T) {
	s := &Cache{}
	gold := api.Policy{Meta: api.Meta{ID: "gold"}, PolicySpec: api.PolicySpec{BandwidthMbps: 8}}
	silver := api.Policy{Meta: api.Meta{ID: "silver"}, PolicySpec: api.PolicySpec{BandwidthMbps: 8}}
	scheduled := &api.Job{Trigger: api.TriggerScheduled}
	onDemand := &api.Job{Trigger: api.TriggerOnDemand}

	a, b := s.UploadLimiter(scheduled, &gold), s.UploadLimiter(scheduled, &gold)
	if a == nil || a != b {
		t.Fatalf("two scheduled jobs of one policy got limiters %p and %p, want one shared", a, b)
	}
	if a.Limit() != 1_000_000 {
		t.Fatalf("8 Mbps became %v bytes/s", a.Limit())
	}
	if c := s.UploadLimiter(scheduled, &silver); c == a {
		t.Fatal("two policies share a limiter")
	}
	if l := s.UploadLimiter(onDemand, &gold); l != nil {
		t.Fatal("an on-demand run is capped")
	}
	gold.BandwidthMbps = 16
	s.PolicyChanged(gold)
	if a.Limit() != 2_000_000 {
		t.Fatalf("a changed cap left the held limiter at %v bytes/s", a.Limit())
	}
	gold.BandwidthMbps = 0
	s.PolicyChanged(gold)
	if a.Limit() != rate.Inf || s.UploadLimiter(scheduled, &gold) != nil {
		t.Fatalf("a lifted cap still limits (%v)", a.Limit())
	}
}
