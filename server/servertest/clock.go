package servertest

import (
	"sync"
	"time"
)

// Clock is a server clock (server.Config.Now) a test controls: it starts
// at a chosen time, runs with real time (speed times faster), and can be
// moved forward, so that schedule slots come due when the test wants.
type Clock struct {
	mu    sync.Mutex
	start time.Time
	real  time.Time
	speed time.Duration
	shift time.Duration
}

// NewClock returns a clock that reads start now and runs speed times
// faster than real time (1 is real time).
func NewClock(start time.Time, speed int) *Clock {
	return &Clock{start: start, real: time.Now(), speed: time.Duration(max(speed, 1))}
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.start.Add(time.Since(c.real)*c.speed + c.shift)
}

// Restart makes the clock read its start time again from now on.
func (c *Clock) Restart() {
	c.mu.Lock()
	c.real, c.shift = time.Now(), 0
	c.mu.Unlock()
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.shift += d
	c.mu.Unlock()
}
