package logging

import (
	"sync"
	"time"
)

// DefaultMaxKeys bounds a Limiter whose MaxKeys is zero.
const DefaultMaxKeys = 1024

// Limiter lets an error that repeats (a port that stays unplugged, a broker that
// stays down) be logged once per interval per key instead of on every retry:
//
//	if lim.Allow("open " + port) {
//		log.Error("cannot open port", "port", port, "err", err)
//	}
//
// It remembers at most MaxKeys keys; past that, keys whose interval has passed are
// forgotten first, then the least recently allowed, which may then log early: the
// memory stays bounded whatever the keys are. A zero Limiter allows everything; it is
// safe for concurrent use.
type Limiter struct {
	// Interval is the time between two allowed calls with the same key.
	Interval time.Duration
	// MaxKeys bounds the keys remembered (DefaultMaxKeys when zero).
	MaxKeys int

	mu   sync.Mutex
	keys map[string]*limitEntry
	now  func() time.Time // time.Now; replaced in tests
}

type limitEntry struct {
	last       time.Time
	suppressed int
}

// NewLimiter returns a Limiter allowing each key once per interval, remembering at
// most maxKeys keys (DefaultMaxKeys when maxKeys <= 0).
func NewLimiter(interval time.Duration, maxKeys int) *Limiter {
	return &Limiter{Interval: interval, MaxKeys: maxKeys}
}

// Allow reports whether a message with this key may be logged now.
func (l *Limiter) Allow(key string) bool {
	ok, _ := l.Check(key)
	return ok
}

// Check is Allow that also returns, when allowed, how many calls with this key were
// refused since the last allowed one, so the message can say "(12 more suppressed)".
func (l *Limiter) Check(key string) (allow bool, suppressed int) {
	if l.Interval <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	t := now()
	if e := l.keys[key]; e != nil {
		if t.Sub(e.last) < l.Interval {
			e.suppressed++
			return false, 0
		}
		n := e.suppressed
		e.last, e.suppressed = t, 0
		return true, n
	}
	if l.keys == nil {
		l.keys = make(map[string]*limitEntry)
	}
	limit := l.MaxKeys
	if limit <= 0 {
		limit = DefaultMaxKeys
	}
	if len(l.keys) >= limit {
		l.evict(t, limit)
	}
	l.keys[key] = &limitEntry{last: t}
	return true, 0
}

// evict makes room for one key: it drops every expired key (it would be allowed
// anyway), and when none expired, the least recently allowed one. It runs only when
// the map is full, and scans at most limit entries.
func (l *Limiter) evict(now time.Time, limit int) {
	var oldestKey string
	var oldest time.Time
	found := false
	for k, e := range l.keys {
		if now.Sub(e.last) >= l.Interval {
			delete(l.keys, k)
			continue
		}
		if !found || e.last.Before(oldest) {
			oldestKey, oldest, found = k, e.last, true
		}
	}
	if found && len(l.keys) >= limit {
		delete(l.keys, oldestKey)
	}
}

// Len returns the number of keys remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
