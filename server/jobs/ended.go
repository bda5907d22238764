package jobs

import "sync"

// endSignal tells the readers waiting for jobs to end (GET
// /v1/jobs/{id}?wait=…) that this process has just recorded one's end, so
// they read their job again at once instead of at their next poll. It is
// a broadcast without a payload: every waiter re-reads its own row. Ends
// recorded by another replica are not signalled here; the waiters' poll
// still sees them.
type endSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// next returns a channel closed at the next fire. Take it before reading
// the job, so an end recorded between the read and the wait is not missed.
func (e *endSignal) next() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ch == nil {
		e.ch = make(chan struct{})
	}
	return e.ch
}

// fire wakes every waiter taken so far.
func (e *endSignal) fire() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ch != nil {
		close(e.ch)
		e.ch = nil
	}
}

// JobEnded returns a channel closed when this process next records the end
// of a job, after the transaction that records it has committed.
func (s *Service) JobEnded() <-chan struct{} { return s.ended.next() }
