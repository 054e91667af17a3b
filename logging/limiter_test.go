package logging

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a hand-driven clock for the limiter.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLimiter(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	l := NewLimiter(time.Minute, 0)
	l.now = clk.now
	type step struct {
		advance    time.Duration
		key        string
		allow      bool
		suppressed int
	}
	steps := []step{
		{0, "port /dev/ttyUSB0", true, 0},
		{time.Second, "port /dev/ttyUSB0", false, 0},
		{time.Second, "port /dev/ttyUSB0", false, 0},
		{0, "port /dev/ttyUSB1", true, 0}, // keys are independent
		{58*time.Second - time.Nanosecond, "port /dev/ttyUSB0", false, 0},
		{time.Nanosecond, "port /dev/ttyUSB0", true, 3}, // exactly one interval later
		{time.Second, "port /dev/ttyUSB0", false, 0},
		{time.Hour, "port /dev/ttyUSB0", true, 1},
		{0, "", true, 0}, // the empty key is a key like any other
		{0, "", false, 0},
	}
	for i, s := range steps {
		clk.advance(s.advance)
		allow, n := l.Check(s.key)
		if allow != s.allow || n != s.suppressed {
			t.Errorf("step %d (%q): Check = %v, %d; want %v, %d", i, s.key, allow, n, s.allow, s.suppressed)
		}
	}
}

func TestLimiterZeroAllowsAll(t *testing.T) {
	var l Limiter
	for i := 0; i < 3; i++ {
		if !l.Allow("k") {
			t.Fatal("zero Limiter refused")
		}
	}
	if l.Len() != 0 {
		t.Errorf("zero Limiter remembered %d keys", l.Len())
	}
}

func TestLimiterBounded(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	l := NewLimiter(time.Minute, 3)
	l.now = clk.now
	for i := 0; i < 3; i++ {
		clk.advance(time.Second)
		if !l.Allow(fmt.Sprint("k", i)) {
			t.Fatalf("k%d refused", i)
		}
	}
	// Full, nothing expired: the least recently allowed (k0) makes room.
	clk.advance(time.Second)
	if !l.Allow("k3") {
		t.Fatal("k3 refused")
	}
	if n := l.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	if l.Allow("k1") || l.Allow("k2") || l.Allow("k3") {
		t.Error("a remembered key was allowed within its interval")
	}
	if !l.Allow("k0") { // forgotten, so allowed early; k1 goes
		t.Error("evicted k0 refused")
	}
	// Past the interval every old key expires and is dropped at once.
	clk.advance(2 * time.Minute)
	if !l.Allow("fresh") {
		t.Fatal("fresh refused")
	}
	if n := l.Len(); n != 1 {
		t.Errorf("after expiry Len = %d, want 1", n)
	}
	// A flood of distinct keys never grows the map past its bound.
	for i := 0; i < 10000; i++ {
		l.Allow(fmt.Sprint("flood", i))
	}
	if n := l.Len(); n != 3 {
		t.Errorf("after flood Len = %d, want 3", n)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(time.Hour, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if l.Allow("same") {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 1 {
		t.Errorf("allowed %d times within one interval, want 1", allowed)
	}
}
