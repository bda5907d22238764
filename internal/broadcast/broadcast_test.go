package broadcast_test

import (
	"testing"

	"github.com/havenbackup/terraform-provider-haven/internal/broadcast"
)

// TestFireWakesWaitersTakenBeforeIt: a channel taken before a Fire is
// closed by it, every one of them; one taken after it waits for the next
// Fire.
func TestFireWakesWaitersTakenBeforeIt(t *testing.T) {
	var s broadcast.Signal
	s.Fire() // with no waiter yet: nothing to wake, and nothing breaks
	a, b := s.Next(), s.Next()
	if isClosed(a) {
		t.Fatal("a waiter is woken before any Fire")
	}
	s.Fire()
	if !isClosed(a) || !isClosed(b) {
		t.Fatal("a Fire did not wake every waiter taken before it")
	}
	c := s.Next()
	if isClosed(c) {
		t.Fatal("a waiter taken after a Fire is woken by it")
	}
	s.Fire()
	if !isClosed(c) {
		t.Fatal("the next Fire did not wake the waiter taken after the first")
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
