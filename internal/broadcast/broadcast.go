// Package broadcast wakes every goroutine waiting for something to happen
// in this process (a job recorded as ended, a job handed to an agent), so
// that each reads its own state again at once instead of at its next poll.
// A Signal carries no payload: waiters re-read what they wait on. What
// another replica does is not signalled; waiters keep a poll for that.
package broadcast

import "sync"

// Signal is a broadcast without a payload. The zero value is ready.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// Next returns a channel closed at the next Fire. Take it before reading
// the state waited on, so that a change between the read and the wait is
// not missed.
func (s *Signal) Next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Fire wakes every waiter whose channel was taken so far.
func (s *Signal) Fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
