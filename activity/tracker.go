package activity

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options, those of the configuration loader.
const (
	DefaultTimeout     = 300 * time.Second
	DefaultCheckPeriod = 10 * time.Second
)

// Options configures a Tracker. Zero values mean the defaults.
type Options struct {
	// Timeout is inactivityTimeoutSeconds: a device silent that long is inactive.
	Timeout time.Duration
	// CheckPeriod is inactivityCheckPeriodSeconds: how often Run checks.
	CheckPeriod time.Duration
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// OnInactive is called once when a device becomes inactive.
	OnInactive func(device string)
	// OnActive is called once when an inactive device sends data again.
	OnActive func(device string)
}

// Tracker follows the last data time of every device. It is safe for concurrent
// use.
type Tracker struct {
	opts Options

	mu   sync.RWMutex
	devs map[string]*dev
}

type dev struct {
	last     atomic.Int64 // unix nanoseconds of the last Seen
	seq      atomic.Uint64
	inactive atomic.Bool // written with mu held for writing
}

// New returns a Tracker.
func New(opts Options) *Tracker {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.CheckPeriod <= 0 {
		opts.CheckPeriod = DefaultCheckPeriod
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Tracker{opts: opts, devs: map[string]*dev{}}
}

// Seen records data from device now. An inactive device becomes active (OnActive);
// an unknown one starts being tracked, silently.
func (t *Tracker) Seen(device string) {
	now := t.opts.Now().UnixNano()
	t.mu.RLock()
	d := t.devs[device]
	t.mu.RUnlock()
	if d == nil {
		t.mu.Lock()
		if d = t.devs[device]; d == nil {
			d = &dev{}
			d.last.Store(now)
			t.devs[device] = d
		}
		t.mu.Unlock()
	}
	d.last.Store(now)
	d.seq.Add(1)
	if !d.inactive.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Re-check: Check may have reverted the flag, or the device may be gone.
	if t.devs[device] == d && d.inactive.Load() {
		d.inactive.Store(false)
		if t.opts.OnActive != nil {
			t.opts.OnActive(device)
		}
	}
}

// Check marks the devices silent for the timeout at now as inactive, calls
// OnInactive for each (in name order) and returns them. Devices already inactive
// are not reported again.
func (t *Tracker) Check(now time.Time) []string {
	limit := now.Add(-t.opts.Timeout).UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for name, d := range t.devs {
		if d.inactive.Load() {
			continue
		}
		seq := d.seq.Load()
		if d.last.Load() > limit {
			continue
		}
		d.inactive.Store(true)
		// A Seen that ran since the read above either saw the flag (and waits for
		// the lock, then finds it cleared) or did not: either way the device is
		// active, so revert without an event.
		if d.seq.Load() != seq {
			d.inactive.Store(false)
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	if t.opts.OnInactive != nil {
		for _, name := range out {
			t.opts.OnInactive(name)
		}
	}
	return out
}

// Run checks every CheckPeriod until ctx is done.
func (t *Tracker) Run(ctx context.Context) {
	tk := time.NewTicker(t.opts.CheckPeriod)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			t.Check(t.opts.Now())
		}
	}
}

// Inactive reports whether device is known and inactive.
func (t *Tracker) Inactive(device string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	d := t.devs[device]
	return d != nil && d.inactive.Load()
}

// Remove stops tracking a device (it was deleted), without an event.
func (t *Tracker) Remove(device string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.devs, device)
}

// Rename moves a device's state to its new name, without an event. A device
// already tracked under the new name is replaced.
func (t *Tracker) Rename(old, new string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devs[old]
	if d == nil || old == new {
		return
	}
	delete(t.devs, old)
	t.devs[new] = d
}

// Len returns the number of tracked devices.
func (t *Tracker) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.devs)
}
