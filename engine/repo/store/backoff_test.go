package store

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	p := RetryPolicy{InitialDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults()
	for attempt, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.delay(attempt)
			if d < base/2 || d > base {
				t.Fatalf("delay(%d) = %v, want within [%v, %v]", attempt, d, base/2, base)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Fatalf("delay(%d) is not jittered: always %v", attempt, seen)
		}
	}
	if d := DefaultRetryPolicy(); (RetryPolicy{}).withDefaults().MaxAttempts != d.MaxAttempts {
		t.Fatal("zero policy fields must take the defaults")
	}
}
