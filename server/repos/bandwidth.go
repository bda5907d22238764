package repos

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"golang.org/x/time/rate"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// A policy's bandwidth_mbps caps the uploads of its scheduled backups
// together: every such job whose uploads pass through this server process
// (a fileset on the server host, a VM, or an agent's uploads received
// here) draws on one limiter per policy, however many run at once and
// whichever storages they write to. On-demand runs are not capped.
//
// The limiters live in the process, so the cap holds per replica: N
// replicas handling one policy's uploads at the same moment may together
// reach N times the cap.
type policyLimiters struct {
	mu       sync.Mutex
	byPolicy map[string]*rate.Limiter
}

// limiter returns the policy's shared limiter, set to mbps, or nil when
// the policy has no cap. Jobs holding the limiter follow a changed cap at
// once, a lifted one included.
func (p *policyLimiters) limiter(policyID string, mbps int, create bool) *rate.Limiter {
	bytesPerSec := int64(mbps) * 1_000_000 / 8
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.byPolicy[policyID]
	if l != nil {
		store.SetRate(l, bytesPerSec)
	}
	if mbps <= 0 {
		return nil
	}
	if l == nil && create {
		if p.byPolicy == nil {
			p.byPolicy = map[string]*rate.Limiter{}
		}
		l = store.NewLimiter(bytesPerSec)
		p.byPolicy[policyID] = l
	}
	return l
}

// UploadLimiter is the limiter of a backup's uploads: its policy's for a
// scheduled run, none for an on-demand one.
func (s *Cache) UploadLimiter(j *api.Job, pol *api.Policy) *rate.Limiter {
	if j.Trigger != api.TriggerScheduled {
		return nil
	}
	return s.limiters.limiter(pol.ID, pol.BandwidthMbps, true)
}

// PolicyChanged applies a policy's new cap to its uploads running here;
// other replicas pick it up when their next job or agent upload of the
// policy starts.
func (s *Cache) PolicyChanged(pol api.Policy) {
	s.limiters.limiter(pol.ID, pol.BandwidthMbps, false)
}

// PolicyLimiter is the limiter of an upload capped by a policy (an
// agent's): the policy's current cap, read afresh so that a cap changed on
// any replica applies from the next upload on. No policy, or a deleted
// one, caps nothing.
func (s *Cache) PolicyLimiter(ctx context.Context, policyID string) (*rate.Limiter, error) {
	if policyID == "" {
		return nil, nil
	}
	o, err := s.db.Get(ctx, db.BackupPolicies, policyID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil // deleted under a running job: nothing left to cap by
	}
	if err != nil {
		return nil, err
	}
	var spec api.PolicySpec
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		return nil, err
	}
	return s.limiters.limiter(o.ID, spec.BandwidthMbps, true), nil
}
