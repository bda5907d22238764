package jobs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// progressReporter writes a job's progress at most once a second, with
// the warnings gathered since the last write.
type progressReporter struct {
	db       *db.DB
	jobID    string
	mu       sync.Mutex
	last     time.Time
	warnings []string
}

// Progress is the progress reporter of a job.
func (s *Service) Progress(jobID string) driver.Progress {
	return &progressReporter{db: s.db, jobID: jobID}
}

func (p *progressReporter) Report(ctx context.Context, pr api.JobProgress, force bool) {
	p.mu.Lock()
	if !force && time.Since(p.last) < time.Second {
		p.mu.Unlock()
		return
	}
	p.last = time.Now()
	p.mu.Unlock()
	_ = p.db.SetProgress(context.WithoutCancel(ctx), p.jobID, pr)
	p.Flush(ctx)
}

// Flush writes the warnings not yet written, for a job that ends without
// a last progress report (a failure).
func (p *progressReporter) Flush(ctx context.Context) {
	p.mu.Lock()
	warnings := p.warnings
	p.warnings = nil
	p.mu.Unlock()
	_ = p.db.AddWarnings(context.WithoutCancel(ctx), p.jobID, warnings)
}

func (p *progressReporter) Note(msg string) {
	p.mu.Lock()
	p.warnings = append(p.warnings, msg)
	p.mu.Unlock()
}

func (p *progressReporter) Warn(path string, err error) {
	p.Note(fmt.Sprintf("%s: %v", path, err))
}
