package ratelimit

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{"", "", false},
		{"10:1,300:60", "10:1,300:60", false},
		{" 5 : 2 ", "5:2", false},
		{"10", "", true},
		{"0:1", "", true},
		{"10:-1", "", true},
		{"a:b", "", true},
	} {
		l, err := Parse(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("Parse(%q) error %v, want bad=%v", tc.in, err, tc.bad)
			continue
		}
		if err == nil && l.String() != tc.want {
			t.Errorf("Parse(%q) = %q, want %q", tc.in, l.String(), tc.want)
		}
	}
}

func TestReserve(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l, _ := Parse("10:1,30:60")
	// 10 per second: the first 10 units go at once, the 11th waits for the next second.
	for i := range 10 {
		if w := l.Reserve(t0, 1); w != 0 {
			t.Fatalf("unit %d waits %v", i, w)
		}
	}
	if w := l.Reserve(t0.Add(100*time.Millisecond), 1); w != 900*time.Millisecond {
		t.Fatalf("11th unit waits %v, want 900ms", w)
	}
	// Seconds 1 and 2 fill up to 30 in the minute: the next waits for the minute.
	for range 9 {
		l.Reserve(t0.Add(time.Second), 1)
	}
	for range 10 {
		l.Reserve(t0.Add(2*time.Second), 1)
	}
	if w := l.Reserve(t0.Add(3*time.Second), 1); w != 57*time.Second {
		t.Fatalf("31st unit in the minute waits %v, want 57s", w)
	}
}

func TestReserveLargeAndNil(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l, _ := Parse("10:1")
	if w := l.Reserve(t0, 25); w != 0 {
		t.Fatalf("a batch larger than the limit in a fresh window waits %v", w)
	}
	if w := l.Reserve(t0, 1); w != time.Second {
		t.Fatalf("after it, the next unit waits %v, want 1s", w)
	}
	var none *Limiter
	if none.Reserve(t0, 1000) != 0 {
		t.Fatal("a nil limiter never waits")
	}
	empty, _ := Parse("")
	if empty.Reserve(t0, 1000) != 0 {
		t.Fatal("an empty limiter never waits")
	}
}

// TestRateOverTime sends as fast as allowed for 10 simulated seconds: the count
// never passes any window.
func TestRateOverTime(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l, _ := Parse("100:1,500:10")
	now := t0
	sent := 0
	for now.Before(t0.Add(10 * time.Second)) {
		w := l.Reserve(now, 1)
		now = now.Add(w)
		if now.Before(t0.Add(10 * time.Second)) {
			sent++
		}
	}
	if sent != 500 {
		t.Fatalf("sent %d in 10 s under 100:1,500:10, want 500", sent)
	}
}
