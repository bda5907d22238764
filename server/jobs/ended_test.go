package jobs

import "testing"

// TestEndSignalWakesWaitersTakenBeforeIt: a channel taken before a fire
// is closed by it, every one of them; one taken after it waits for the
// next fire.
func TestEndSignalWakesWaitersTakenBeforeIt(t *testing.T) {
	var e endSignal
	e.fire() // with no waiter yet: nothing to wake, and nothing breaks
	a, b := e.next(), e.next()
	if isClosed(a) {
		t.Fatal("a waiter is woken before any job ended")
	}
	e.fire()
	if !isClosed(a) || !isClosed(b) {
		t.Fatal("a job's end did not wake every waiter taken before it")
	}
	c := e.next()
	if isClosed(c) {
		t.Fatal("a waiter taken after an end is woken by it")
	}
	e.fire()
	if !isClosed(c) {
		t.Fatal("the next end did not wake the waiter taken after the first")
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
