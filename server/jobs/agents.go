package jobs

import (
	"context"
	"errors"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// AgentHub hands jobs of agent file servers to their agents.
type AgentHub struct {
	s *Service
}

func newAgentHub(s *Service) *AgentHub { return &AgentHub{s: s} }

var errNoAgentSupport = errors.New("file servers with location \"agent\" cannot be backed up or restored yet: haven agent is not implemented in this version")

func (h *AgentHub) runBackup(ctx context.Context, j *api.Job, a *asset) error {
	return skipError{errNoAgentSupport.Error()}
}

func (h *AgentHub) runRestore(ctx context.Context, j *api.Job, p *RestoreParams, pt api.Point) error {
	return skipError{errNoAgentSupport.Error()}
}

func (h *AgentHub) cancel(jobID string) {}
