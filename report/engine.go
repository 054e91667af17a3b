package report

import (
	"container/heap"
	"context"
	"sort"
	"sync"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// Defaults of Options.
const (
	// DefaultMaxEntries bounds the cache: one entry per device, key and kind
	// (telemetry or attribute) that a non-ON_RECEIVED strategy applies to.
	DefaultMaxEntries = 100_000
	// DefaultTTL is how long a cached value lives after its last update when no
	// level sets "ttl".
	DefaultTTL = 24 * time.Hour
	// DefaultReportPeriod is the period of a periodic strategy when no level sets
	// "reportPeriod" (the configuration loader rejects that, so it is a safety net;
	// it is the Python gateway's default period).
	DefaultReportPeriod = 10 * time.Second
	// DefaultTolerance is how far apart two numbers must be for ON_CHANGE.
	DefaultTolerance = 0.001
)

// Options configures an Engine. The zero value of every field means its default.
type Options struct {
	// Now is the clock (time.Now by default). Tests pass a fake clock and call Tick.
	Now func() time.Time
	// MaxEntries bounds the cache; past it the entry updated longest ago is evicted.
	MaxEntries int
	// DefaultTTL applies when no level sets "ttl".
	DefaultTTL time.Duration
	// DefaultReportPeriod applies to periodic strategies when no level sets
	// "reportPeriod".
	DefaultReportPeriod time.Duration
	// Tolerance is the ON_CHANGE tolerance for numbers (0.001, SPEC §5).
	Tolerance float64
	// ResendWithCurrentTS stamps periodic re-sends with the time of the re-send.
	// By default a re-send keeps the value's original ts (SPEC §5).
	ResendWithCurrentTS bool
	// Emit receives the periodic re-sends when Run drives the engine, one
	// ConvertedData per device. It is called from Run's goroutine and may block
	// (storage back-pressure); it must not call back into the Engine's Run.
	Emit func(d *connector.ConvertedData)
}

// Engine applies report strategies to the uplink data and re-sends cached values
// periodically. All methods are safe for concurrent use.
type Engine struct {
	gw     connector.ReportStrategy
	gwKind kind
	opts   Options

	mu      sync.Mutex
	devices map[string]*devState
	n       int    // entries in the cache
	oldest  *entry // least recently updated entry (LRU list head)
	newest  *entry // most recently updated entry (LRU list tail)
	sched   schedule
	wake    chan struct{}
}

// devState is the cache of one device.
type devState struct {
	name    string
	typ     string
	entries map[keyID]*entry
}

// keyID names one datapoint of a device: telemetry and attributes with the same
// key are separate entries.
type keyID struct {
	attr bool
	key  string
}

// entry is one cached datapoint. It is at once in its device's map, in the LRU
// list and in the scheduler's heap.
type entry struct {
	dev   *devState
	id    keyID
	value connector.Value
	ts    int64 // the value's ts (telemetry), ms
	r     resolved

	updated time.Time // last time Filter saw this key
	sent    time.Time // last time the value went out (Filter or a re-send)

	deadline   time.Time // next time the scheduler looks at this entry
	idx        int       // index in the heap, -1 when out
	prev, next *entry    // LRU list
}

// New returns an Engine whose gateway-level strategy is gateway ("reportStrategy"
// of tb_gateway.json; the zero value means ON_RECEIVED).
func New(gateway connector.ReportStrategy, opts Options) *Engine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = DefaultTTL
	}
	if opts.DefaultReportPeriod <= 0 {
		opts.DefaultReportPeriod = DefaultReportPeriod
	}
	if opts.Tolerance <= 0 {
		opts.Tolerance = DefaultTolerance
	}
	return &Engine{
		gw:      gateway,
		gwKind:  parseKind(gateway.Type),
		opts:    opts,
		devices: map[string]*devState{},
		wake:    make(chan struct{}, 1),
	}
}

// Filter applies the strategies to one ConvertedData of a connector, given the
// connector-level and device-level strategies (nil when not configured), and
// returns what must be sent now: d itself when everything passes, a new
// ConvertedData with the datapoints that pass (it may share value slices with d),
// or nil when nothing does. d is never modified. It updates the cache.
//
// When every level that applies is ON_RECEIVED (or the gateway level is DISABLED),
// Filter returns d without locking or allocating.
func (e *Engine) Filter(conn, dev *connector.ReportStrategy, d *connector.ConvertedData) *connector.ConvertedData {
	if d == nil || e.gwKind == kindDisabled {
		return d
	}
	if e.baseKind(dev, conn) == kindReceived && !needsCache(d) {
		return d
	}
	now := e.opts.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	f := filterRun{e: e, d: d, conn: conn, dev: dev, now: now}
	// Pass 1 decides (and caches) every datapoint, recording the decisions in a
	// bitset that lives on the stack for messages of up to 256 datapoints, so that
	// a message where nothing or everything passes costs no allocation.
	n := len(d.Attributes)
	for i := range d.Telemetry {
		n += len(d.Telemetry[i].Values)
	}
	var small [4]uint64
	bits := small[:]
	if n > len(small)*64 {
		bits = make([]uint64, (n+63)/64)
	}
	k, kept := 0, 0
	for i := range d.Telemetry {
		te := &d.Telemetry[i]
		for j := range te.Values {
			if f.decide(false, &te.Values[j], te.TS) {
				bits[k>>6] |= 1 << (k & 63)
				kept++
			}
			k++
		}
	}
	for j := range d.Attributes {
		if f.decide(true, &d.Attributes[j], 0) {
			bits[k>>6] |= 1 << (k & 63)
			kept++
		}
		k++
	}
	switch kept {
	case n:
		return d
	case 0:
		return nil
	}
	// Pass 2 copies what passed; entries that passed whole share d's slices.
	has := func(k int) bool { return bits[k>>6]&(1<<(k&63)) != 0 }
	out := &connector.ConvertedData{DeviceName: d.DeviceName, DeviceType: d.DeviceType}
	k = 0
	for i := range d.Telemetry {
		te := &d.Telemetry[i]
		first, all, none := k, true, true
		for range te.Values {
			if has(k) {
				none = false
			} else {
				all = false
			}
			k++
		}
		switch {
		case none:
		case all:
			out.Telemetry = append(out.Telemetry, *te)
		default:
			var vals []connector.Datapoint
			for j := range te.Values {
				if has(first + j) {
					vals = append(vals, te.Values[j])
				}
			}
			out.Telemetry = append(out.Telemetry, connector.TelemetryEntry{TS: te.TS, Values: vals})
		}
	}
	for j := range d.Attributes {
		if has(k + j) {
			out.Attributes = append(out.Attributes, d.Attributes[j])
		}
	}
	return out
}

// filterRun carries one Filter call's arguments to decide.
type filterRun struct {
	e         *Engine
	d         *connector.ConvertedData
	conn, dev *connector.ReportStrategy
	now       time.Time
	ds        *devState
}

// decide reports whether one datapoint is sent now, and caches it. e.mu is held.
func (f *filterRun) decide(attr bool, dp *connector.Datapoint, ts int64) bool {
	e := f.e
	r := e.resolve(dp.Strategy, f.dev, f.conn)
	if r.kind == kindReceived {
		return true
	}
	if f.ds == nil {
		f.ds = e.device(f.d.DeviceName, f.d.DeviceType)
	}
	id := keyID{attr: attr, key: dp.Key}
	en := f.ds.entries[id]
	if en != nil && !f.now.Before(en.updated.Add(en.r.ttl)) {
		e.remove(en) // expired, the scheduler has not got to it yet
		en = nil
		if f.ds.entries == nil { // remove dropped the empty device
			f.ds = e.device(f.d.DeviceName, f.d.DeviceType)
		}
	}
	if en == nil {
		// A key's first value is always sent, whatever the strategy (as the Python
		// gateway does): the platform learns the value at once.
		en = &entry{dev: f.ds, id: id, value: dp.Value, ts: ts, r: r, updated: f.now, sent: f.now, idx: -1}
		e.insert(en)
		return true
	}
	en.r = r
	en.updated = f.now
	e.touch(en)
	send := false
	switch r.kind {
	case kindChange, kindChangeOrPeriod:
		// Compare with the last value sent, not the last received, so that a slow
		// drift below the tolerance at each step is still reported.
		if !en.value.Equal(dp.Value, e.opts.Tolerance) {
			en.value, en.ts, en.sent = dp.Value, ts, f.now
			send = true
		}
	case kindPeriod:
		en.value, en.ts = dp.Value, ts // the latest value goes out at the next period
	}
	// Deadlines only move later on their own (the scheduler re-checks lazily); a
	// strategy that changed between calls can move one earlier.
	if nd := e.nextDeadline(en); nd.Before(en.deadline) {
		en.deadline = nd
		heap.Fix(&e.sched, en.idx)
		e.poke(en)
	}
	return send
}

// device returns the cache of a device, creating it. e.mu is held.
func (e *Engine) device(name, typ string) *devState {
	ds := e.devices[name]
	if ds == nil {
		ds = &devState{name: name, typ: typ, entries: map[keyID]*entry{}}
		e.devices[name] = ds
	} else if typ != "" {
		ds.typ = typ
	}
	return ds
}

// insert adds a new entry to its device, the LRU list and the heap, evicting the
// oldest entries past MaxEntries. e.mu is held.
func (e *Engine) insert(en *entry) {
	en.dev.entries[en.id] = en
	e.n++
	e.pushNewest(en)
	en.deadline = e.nextDeadline(en)
	heap.Push(&e.sched, en)
	for e.n > e.opts.MaxEntries && e.oldest != nil && e.oldest != en {
		e.remove(e.oldest)
	}
	e.poke(en)
}

// poke wakes Run when en became the earliest deadline.
func (e *Engine) poke(en *entry) {
	if en.idx == 0 {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

// remove drops an entry from everywhere; a device left without entries is
// dropped too. e.mu is held.
func (e *Engine) remove(en *entry) {
	if en.idx >= 0 {
		heap.Remove(&e.sched, en.idx)
	}
	e.unlink(en)
	delete(en.dev.entries, en.id)
	if len(en.dev.entries) == 0 && e.devices[en.dev.name] == en.dev {
		delete(e.devices, en.dev.name)
		en.dev.entries = nil
	}
	e.n--
}

func (e *Engine) nextDeadline(en *entry) time.Time {
	exp := en.updated.Add(en.r.ttl)
	if en.r.kind.periodic() {
		if p := en.sent.Add(en.r.period); p.Before(exp) {
			return p
		}
	}
	return exp
}

// LRU list, oldest first.

func (e *Engine) pushNewest(en *entry) {
	en.prev, en.next = e.newest, nil
	if e.newest != nil {
		e.newest.next = en
	} else {
		e.oldest = en
	}
	e.newest = en
}

func (e *Engine) unlink(en *entry) {
	if en.prev != nil {
		en.prev.next = en.next
	} else if e.oldest == en {
		e.oldest = en.next
	}
	if en.next != nil {
		en.next.prev = en.prev
	} else if e.newest == en {
		e.newest = en.prev
	}
	en.prev, en.next = nil, nil
}

func (e *Engine) touch(en *entry) {
	if e.newest == en {
		return
	}
	e.unlink(en)
	e.pushNewest(en)
}

// Tick drops the entries whose ttl passed and returns the periodic re-sends due at
// now, one ConvertedData per device, sorted by device name, telemetry by ts then
// key, attributes by key. Run calls it; tests call it with a fake clock.
func (e *Engine) Tick(now time.Time) []*connector.ConvertedData {
	type due struct {
		dev, typ string
		attr     bool
		key      string
		value    connector.Value
		ts       int64
	}
	var sends []due
	e.mu.Lock()
	for len(e.sched) > 0 && !e.sched[0].deadline.After(now) {
		en := e.sched[0]
		if !now.Before(en.updated.Add(en.r.ttl)) {
			e.remove(en)
			continue
		}
		if en.r.kind.periodic() && !now.Before(en.sent.Add(en.r.period)) {
			ts := en.ts
			if e.opts.ResendWithCurrentTS {
				ts = now.UnixMilli()
			}
			sends = append(sends, due{en.dev.name, en.dev.typ, en.id.attr, en.id.key, en.value, ts})
			// Keep the cadence (next = previous + period) unless the scheduler fell
			// a whole period behind: then restart from now rather than burst.
			next := en.sent.Add(en.r.period)
			if now.Sub(next) >= en.r.period {
				next = now
			}
			en.sent = next
		}
		en.deadline = e.nextDeadline(en)
		heap.Fix(&e.sched, 0)
	}
	e.mu.Unlock()
	if len(sends) == 0 {
		return nil
	}
	sort.Slice(sends, func(i, j int) bool {
		a, b := &sends[i], &sends[j]
		if a.dev != b.dev {
			return a.dev < b.dev
		}
		if a.attr != b.attr {
			return !a.attr
		}
		if a.ts != b.ts {
			return a.ts < b.ts
		}
		return a.key < b.key
	})
	var out []*connector.ConvertedData
	var cur *connector.ConvertedData
	for _, s := range sends {
		if cur == nil || cur.DeviceName != s.dev {
			cur = &connector.ConvertedData{DeviceName: s.dev, DeviceType: s.typ}
			out = append(out, cur)
		}
		dp := connector.Datapoint{Key: s.key, Value: s.value}
		if s.attr {
			cur.Attributes = append(cur.Attributes, dp)
			continue
		}
		if n := len(cur.Telemetry); n > 0 && cur.Telemetry[n-1].TS == s.ts {
			cur.Telemetry[n-1].Values = append(cur.Telemetry[n-1].Values, dp)
		} else {
			cur.AddTelemetry(s.ts, dp)
		}
	}
	return out
}

// Next returns the earliest time Tick has work, and false when the cache is empty.
func (e *Engine) Next() (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.sched) == 0 {
		return time.Time{}, false
	}
	return e.sched[0].deadline, true
}

// Run is the engine's scheduler: one goroutine, one timer, for every key. It calls
// Tick when the earliest deadline comes and hands the re-sends to Options.Emit. It
// returns when ctx is done. Call it once.
func (e *Engine) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var c <-chan time.Time
		if next, ok := e.Next(); ok {
			timer.Reset(max(next.Sub(e.opts.Now()), 0))
			c = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
			timer.Stop()
		case <-c:
			for _, d := range e.Tick(e.opts.Now()) {
				if e.opts.Emit != nil {
					e.opts.Emit(d)
				}
			}
		}
	}
}

// Forget drops every cached value of a device (the device was deleted or
// disconnected for good): its periodic re-sends stop, and its next values are
// sent as first values.
func (e *Engine) Forget(device string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ds := e.devices[device]
	if ds == nil {
		return
	}
	for _, en := range ds.entries {
		e.remove(en)
	}
}

// Rename moves the cache of device old to device new (the platform renamed the
// device), so that ON_CHANGE comparisons and periodic re-sends continue under the
// new name. What was cached under new before is dropped.
func (e *Engine) Rename(old, new string) {
	if old == new {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ds := e.devices[old]
	if ds == nil {
		return
	}
	if prev := e.devices[new]; prev != nil {
		for _, en := range prev.entries {
			e.remove(en)
		}
	}
	delete(e.devices, old)
	ds.name = new
	e.devices[new] = ds
}

// Len returns the number of cached values.
func (e *Engine) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// schedule is a min-heap of entries by deadline.
type schedule []*entry

func (s schedule) Len() int           { return len(s) }
func (s schedule) Less(i, j int) bool { return s[i].deadline.Before(s[j].deadline) }
func (s schedule) Swap(i, j int) {
	s[i], s[j] = s[j], s[i]
	s[i].idx = i
	s[j].idx = j
}

func (s *schedule) Push(x any) {
	en := x.(*entry)
	en.idx = len(*s)
	*s = append(*s, en)
}

func (s *schedule) Pop() any {
	old := *s
	n := len(old)
	en := old[n-1]
	old[n-1] = nil
	en.idx = -1
	*s = old[:n-1]
	return en
}
