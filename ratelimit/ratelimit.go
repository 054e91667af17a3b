// Package ratelimit keeps the gateway within ThingsBoard's rate limits. ThingsBoard
// states its limits as windows, "N:S,N:S" (at most N per S seconds for each pair),
// for messages, telemetry messages and telemetry datapoints, and closes a session
// that exceeds them; it tells the gateway its limits in the getSessionLimits answer.
//
// A Limiter holds one fixed window per pair and answers how long to wait before n
// more units may go. The publisher waits that long before a publish instead of
// being disconnected, so data stays in storage rather than being refused.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// window is one "N:S" pair: at most limit units per period.
type window struct {
	limit  int64
	period time.Duration
	start  time.Time // start of the current window
	used   int64
}

// Limiter enforces every window of one limit string. The zero or nil Limiter
// allows everything.
type Limiter struct {
	mu      sync.Mutex
	windows []window
}

// Parse reads a ThingsBoard limit string such as "10:1,300:60". An empty string
// gives a Limiter with no windows (no limit).
func Parse(s string) (*Limiter, error) {
	l := &Limiter{}
	s = strings.TrimSpace(s)
	if s == "" {
		return l, nil
	}
	for _, part := range strings.Split(s, ",") {
		n, sec, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("rate limit %q: %q is not N:SECONDS", s, part)
		}
		limit, err1 := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		secs, err2 := strconv.ParseInt(strings.TrimSpace(sec), 10, 64)
		if err1 != nil || err2 != nil || limit <= 0 || secs <= 0 {
			return nil, fmt.Errorf("rate limit %q: %q is not N:SECONDS with positive numbers", s, part)
		}
		l.windows = append(l.windows, window{limit: limit, period: time.Duration(secs) * time.Second})
	}
	return l, nil
}

// Reserve takes n units at now and returns how long the caller must wait before
// sending them (0: at once). The units are counted in the window where they will
// go, so that concurrent callers queue behind each other. A request larger than a
// window's whole limit is let through at the start of a fresh window (it could
// never fit otherwise).
func (l *Limiter) Reserve(now time.Time, n int64) time.Duration {
	if l == nil || n <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	// The latest time at which all windows accept: check them in turn, moving the
	// send time forward, until one pass needs no move.
	at := now
	for range 4 {
		moved := false
		for i := range l.windows {
			w := &l.windows[i]
			start, used := w.roll(at)
			if used > 0 && used+n > w.limit {
				at = start.Add(w.period)
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	for i := range l.windows {
		w := &l.windows[i]
		w.start, w.used = w.roll(at)
		w.used += n
	}
	if at.After(now) {
		wait = at.Sub(now)
	}
	return wait
}

// roll returns the window containing t and what it has used.
func (w *window) roll(t time.Time) (time.Time, int64) {
	if w.start.IsZero() || t.Before(w.start) {
		if w.start.IsZero() {
			return t, 0
		}
		return w.start, w.used
	}
	if t.Sub(w.start) >= w.period {
		// Windows start where the previous one ended, aligned to the period.
		k := t.Sub(w.start) / w.period
		return w.start.Add(k * w.period), 0
	}
	return w.start, w.used
}

// String gives the limit back in ThingsBoard's form.
func (l *Limiter) String() string {
	if l == nil {
		return ""
	}
	var parts []string
	for _, w := range l.windows {
		parts = append(parts, fmt.Sprintf("%d:%d", w.limit, int64(w.period/time.Second)))
	}
	return strings.Join(parts, ",")
}
