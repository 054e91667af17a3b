package activity

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type recorder struct {
	mu     sync.Mutex
	now    time.Time
	events []string
}

func (r *recorder) Now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *recorder) set(d time.Duration) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = t0.Add(d)
	return r.now
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

func newTracker(r *recorder, timeout time.Duration) *Tracker {
	return New(Options{
		Timeout:    timeout,
		Now:        r.Now,
		OnInactive: func(d string) { r.add("inactive " + d) },
		OnActive:   func(d string) { r.add("active " + d) },
	})
}

func TestTransitions(t *testing.T) {
	type step struct {
		at     time.Duration
		op     string // "seen DEV", "check", "remove DEV", "rename OLD NEW"
		events []string
	}
	s := time.Second
	tests := []struct {
		name  string
		steps []step
	}{
		{"active device is never reported", []step{
			{0, "seen A", nil},
			{50 * s, "seen A", nil},
			{60 * s, "check", nil},
			{100 * s, "seen A", nil},
			{159 * s, "check", nil},
		}},
		{"silent device reported once, then active once on its next data", []step{
			{0, "seen A", nil},
			{59 * s, "check", nil},
			{60 * s, "check", []string{"inactive A"}},
			{70 * s, "check", nil},
			{500 * s, "check", nil},
			{501 * s, "seen A", []string{"active A"}},
			{502 * s, "seen A", nil},
			{502 * s, "check", nil},
			{561 * s, "check", nil},
			{562 * s, "check", []string{"inactive A"}},
		}},
		{"several devices, reported in name order", []step{
			{0, "seen B", nil},
			{0, "seen A", nil},
			{30 * s, "seen C", nil},
			{60 * s, "check", []string{"inactive A", "inactive B"}},
			{90 * s, "check", []string{"inactive C"}},
			{91 * s, "seen B", []string{"active B"}},
		}},
		{"removed device is forgotten without an event", []step{
			{0, "seen A", nil},
			{1 * s, "remove A", nil},
			{100 * s, "check", nil},
			{101 * s, "seen A", nil}, // tracked again, as new: no event
			{161 * s, "check", []string{"inactive A"}},
		}},
		{"renamed device keeps its state", []step{
			{0, "seen A", nil},
			{60 * s, "check", []string{"inactive A"}},
			{61 * s, "rename A Z", nil},
			{62 * s, "seen Z", []string{"active Z"}},
			{63 * s, "seen A", nil}, // a new device under the old name
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{now: t0}
			tr := newTracker(r, time.Minute)
			for i, st := range tt.steps {
				now := r.set(st.at)
				var a, b string
				var op string
				fmt.Sscan(st.op, &op, &a, &b)
				switch op {
				case "seen":
					tr.Seen(a)
				case "check":
					tr.Check(now)
				case "remove":
					tr.Remove(a)
				case "rename":
					tr.Rename(a, b)
				}
				if got := r.take(); !reflect.DeepEqual(got, st.events) {
					t.Fatalf("step %d (%s at %v): events %q, want %q", i, st.op, st.at, got, st.events)
				}
			}
		})
	}
}

func TestCheckReturnsAndInactive(t *testing.T) {
	r := &recorder{now: t0}
	tr := New(Options{Timeout: time.Minute, Now: r.Now}) // no callbacks
	tr.Seen("A")
	tr.Seen("B")
	r.set(30 * time.Second)
	tr.Seen("B")
	if got := tr.Check(t0.Add(time.Minute)); !reflect.DeepEqual(got, []string{"A"}) {
		t.Fatalf("Check = %q, want [A]", got)
	}
	if !tr.Inactive("A") || tr.Inactive("B") || tr.Inactive("nobody") {
		t.Fatal("Inactive: want A only")
	}
	if tr.Len() != 2 {
		t.Fatalf("Len = %d", tr.Len())
	}
}

func TestDefaults(t *testing.T) {
	tr := New(Options{})
	if tr.opts.Timeout != 300*time.Second || tr.opts.CheckPeriod != 10*time.Second || tr.opts.Now == nil {
		t.Fatalf("defaults: %+v", tr.opts)
	}
}

func TestRun(t *testing.T) {
	var mu sync.Mutex
	var events []string
	inactive := make(chan struct{}, 1)
	tr := New(Options{
		Timeout:     30 * time.Millisecond,
		CheckPeriod: 5 * time.Millisecond,
		OnInactive: func(d string) {
			mu.Lock()
			events = append(events, "inactive "+d)
			mu.Unlock()
			inactive <- struct{}{}
		},
		OnActive: func(d string) {
			mu.Lock()
			events = append(events, "active "+d)
			mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.Run(ctx) }()
	tr.Seen("A")
	select {
	case <-inactive:
	case <-time.After(2 * time.Second):
		t.Fatal("no inactivity reported")
	}
	time.Sleep(50 * time.Millisecond) // several more checks: no second report
	tr.Seen("A")
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"inactive A", "active A"}; !reflect.DeepEqual(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
}

// TestNoFlapUnderRace hammers Seen and Check concurrently: whatever the
// interleaving, a device's events must alternate inactive/active, starting with
// inactive.
func TestNoFlapUnderRace(t *testing.T) {
	var mu sync.Mutex
	state := map[string]bool{} // true: inactive
	var bad []string
	tr := New(Options{
		Timeout: time.Nanosecond,
		OnInactive: func(d string) {
			mu.Lock()
			defer mu.Unlock()
			if state[d] {
				bad = append(bad, "double inactive "+d)
			}
			state[d] = true
		},
		OnActive: func(d string) {
			mu.Lock()
			defer mu.Unlock()
			if !state[d] {
				bad = append(bad, "active without inactive "+d)
			}
			state[d] = false
		},
	})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				tr.Seen(fmt.Sprintf("d%d", i%5))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 3000; i++ {
			tr.Check(time.Now())
		}
	}()
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d bad transitions, first: %s", len(bad), bad[0])
	}
}

func BenchmarkSeen(b *testing.B) {
	tr := New(Options{})
	tr.Seen("device")
	b.ReportAllocs()
	for b.Loop() {
		tr.Seen("device")
	}
}
