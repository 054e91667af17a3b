// Package metrics is a small Prometheus exposition (text format 0.0.4) written with
// the standard library only: counters, labelled counters, gauges, gauge and counter
// functions, and fixed-bucket histograms, gathered in a Registry that writes them
// sorted by name in a stable order.
//
// The hot path is lock-free: Counter.Add is one atomic add, Gauge.Set one atomic
// store, Histogram.Observe two atomic adds and a compare-and-swap for the sum. Locks
// are taken only to register metrics, to create a labelled child, and to scrape.
//
// Why not prometheus/client_golang: see docs/dependencies.md. In short, a gateway
// needs a dozen metrics, and the client pulls in protobuf and several modules for it.
package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ContentType is the HTTP Content-Type of the text exposition format 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Metric is one metric family that a Registry can expose. It is implemented by the
// types of this package only.
type Metric interface {
	// Name is the family's metric name.
	Name() string
	fam() *family
	// check validates the family's names (and buckets) for Register.
	check() error
	// write appends the family's sample lines (without HELP and TYPE).
	write(b *bytes.Buffer)
	// empty reports whether the family has no samples to expose yet.
	empty() bool
}

// family is what every metric type shares.
type family struct {
	name, help, typ string
	labels          []string
}

// Name returns the metric name.
func (f *family) Name() string { return f.name }
func (f *family) fam() *family { return f }

// Registry is a set of metric families with unique names.
type Registry struct {
	mu      sync.Mutex
	metrics []Metric // sorted by name
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Register adds metrics to the registry. It checks names and label names against
// the format's rules and refuses a name that is already registered; on error none
// of ms is added.
func (r *Registry) Register(ms ...Metric) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]bool, len(r.metrics)+len(ms))
	for _, m := range r.metrics {
		seen[m.Name()] = true
	}
	for _, m := range ms {
		if err := m.check(); err != nil {
			return err
		}
		if seen[m.Name()] {
			return fmt.Errorf("metrics: %q is already registered", m.Name())
		}
		seen[m.Name()] = true
	}
	r.metrics = append(r.metrics, ms...)
	sort.Slice(r.metrics, func(i, j int) bool { return r.metrics[i].Name() < r.metrics[j].Name() })
	return nil
}

// WriteTo writes every family with samples in the text format, families sorted by
// name, series of a labelled family sorted by their label values. It implements
// io.WriterTo.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	ms := append([]Metric(nil), r.metrics...)
	r.mu.Unlock()
	var b bytes.Buffer
	for _, m := range ms {
		if m.empty() {
			continue
		}
		d := m.fam()
		if d.help != "" {
			b.WriteString("# HELP ")
			b.WriteString(d.name)
			b.WriteByte(' ')
			b.WriteString(helpEscaper.Replace(d.help))
			b.WriteByte('\n')
		}
		b.WriteString("# TYPE ")
		b.WriteString(d.name)
		b.WriteByte(' ')
		b.WriteString(d.typ)
		b.WriteByte('\n')
		m.write(&b)
	}
	n, err := w.Write(b.Bytes())
	if err != nil {
		return int64(n), fmt.Errorf("metrics: write exposition: %w", err)
	}
	return int64(n), nil
}

// Counter is a monotonically increasing integer count.
type Counter struct {
	family
	v atomic.Uint64
}

// NewCounter returns a counter; register it with Registry.Register.
func NewCounter(name, help string) *Counter {
	return &Counter{family: family{name: name, help: help, typ: "counter"}}
}

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n with one atomic operation.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.v.Load() }

func (c *Counter) empty() bool { return false }
func (c *Counter) write(b *bytes.Buffer) {
	writeSample(b, c.name, "", strconv.FormatUint(c.v.Load(), 10))
}

// CounterVec is a family of counters told apart by label values, such as one
// counter per connector. Label values should come from configuration (connector or
// device names), not from data, since every distinct value is kept for the life of
// the process.
type CounterVec struct {
	family
	mu       sync.RWMutex
	children map[string]*vecChild // by escaped label string
}

type vecChild struct {
	labels string // rendered `a="x",b="y"`
	c      Counter
}

// NewCounterVec returns a counter family with the given label names.
func NewCounterVec(name, help string, labelNames ...string) *CounterVec {
	return &CounterVec{
		family:   family{name: name, help: help, typ: "counter", labels: append([]string(nil), labelNames...)},
		children: make(map[string]*vecChild),
	}
}

// With returns the counter for the given label values, one per label name in order,
// creating it at zero the first time. Keep the result for the hot path: With itself
// takes a read lock and builds a key.
func (v *CounterVec) With(labelValues ...string) (*Counter, error) {
	if len(labelValues) != len(v.labels) {
		return nil, fmt.Errorf("metrics: %s: got %d label values, want %d (%s)",
			v.name, len(labelValues), len(v.labels), strings.Join(v.labels, ", "))
	}
	key := renderLabels(v.labels, labelValues)
	v.mu.RLock()
	ch := v.children[key]
	v.mu.RUnlock()
	if ch != nil {
		return &ch.c, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if ch = v.children[key]; ch == nil {
		ch = &vecChild{labels: key}
		v.children[key] = ch
	}
	return &ch.c, nil
}

func (v *CounterVec) empty() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.children) == 0
}

func (v *CounterVec) write(b *bytes.Buffer) {
	v.mu.RLock()
	keys := make([]string, 0, len(v.children))
	for k := range v.children {
		keys = append(keys, k)
	}
	v.mu.RUnlock()
	sort.Strings(keys)
	for _, k := range keys {
		v.mu.RLock()
		ch := v.children[k]
		v.mu.RUnlock()
		writeSample(b, v.name, k, strconv.FormatUint(ch.c.v.Load(), 10))
	}
}

// Gauge is a value that goes up and down, stored as float64 bits in one atomic word.
type Gauge struct {
	family
	bits atomic.Uint64
}

// NewGauge returns a gauge at zero; register it with Registry.Register.
func NewGauge(name, help string) *Gauge {
	return &Gauge{family: family{name: name, help: help, typ: "gauge"}}
}

// Set sets the value with one atomic store.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds d (which may be negative).
func (g *Gauge) Add(d float64) { addFloat(&g.bits, d) }

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

func (g *Gauge) empty() bool { return false }
func (g *Gauge) write(b *bytes.Buffer) {
	writeSample(b, g.name, "", formatFloat(g.Value()))
}

// GaugeFunc is a gauge whose value is read from a function at scrape time, for
// values another component owns (storage depth, open ports, uptime).
type GaugeFunc struct {
	family
	f func() float64
}

// NewGaugeFunc returns a gauge that calls f on every scrape. f must be safe for
// concurrent use and quick.
func NewGaugeFunc(name, help string, f func() float64) *GaugeFunc {
	return &GaugeFunc{family: family{name: name, help: help, typ: "gauge"}, f: f}
}

func (g *GaugeFunc) empty() bool { return false }
func (g *GaugeFunc) write(b *bytes.Buffer) {
	writeSample(b, g.name, "", formatFloat(g.f()))
}

// CounterFunc is a counter whose value is read from a function at scrape time, for
// counts another component already keeps (records dropped by storage).
type CounterFunc struct {
	family
	f func() uint64
}

// NewCounterFunc returns a counter that calls f on every scrape. f must be safe for
// concurrent use, quick, and never decrease.
func NewCounterFunc(name, help string, f func() uint64) *CounterFunc {
	return &CounterFunc{family: family{name: name, help: help, typ: "counter"}, f: f}
}

func (c *CounterFunc) empty() bool { return false }
func (c *CounterFunc) write(b *bytes.Buffer) {
	writeSample(b, c.name, "", strconv.FormatUint(c.f(), 10))
}

// LatencyBuckets are upper bounds in seconds suited to publish latency on a LAN or a
// mobile link: 1 ms to 10 s.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Histogram counts observations in fixed buckets and keeps their sum.
type Histogram struct {
	family
	upper  []float64       // sorted bucket upper bounds, without +Inf
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // float64 bits
}

// NewHistogram returns a histogram with the given bucket upper bounds (the +Inf
// bucket is implicit). Bounds that are not strictly increasing make Register fail.
func NewHistogram(name, help string, buckets []float64) *Histogram {
	up := append([]float64(nil), buckets...)
	return &Histogram{
		family: family{name: name, help: help, typ: "histogram"},
		upper:  up,
		counts: make([]atomic.Uint64, len(up)+1),
	}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	// Buckets are few; sort.SearchFloat64s would be slower than this loop for them.
	i := 0
	for i < len(h.upper) && v > h.upper[i] {
		i++
	}
	h.counts[i].Add(1)
	addFloat(&h.sum, v)
}

// ObserveDuration records d in seconds.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(d.Seconds()) }

func (h *Histogram) empty() bool { return false }

// write derives the count from the buckets so that the +Inf bucket and _count always
// agree even while observations land during the scrape; the sum may lag by the
// observations in flight, which the format tolerates.
func (h *Histogram) write(b *bytes.Buffer) {
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		le := "+Inf"
		if i < len(h.upper) {
			le = formatFloat(h.upper[i])
		}
		writeSample(b, h.name+"_bucket", `le="`+le+`"`, strconv.FormatUint(cum, 10))
	}
	writeSample(b, h.name+"_sum", "", formatFloat(math.Float64frombits(h.sum.Load())))
	writeSample(b, h.name+"_count", "", strconv.FormatUint(cum, 10))
}

// addFloat adds d to the float64 stored as bits in u.
func addFloat(u *atomic.Uint64, d float64) {
	for {
		old := u.Load()
		if u.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

func writeSample(b *bytes.Buffer, name, labels, value string) {
	b.WriteString(name)
	if labels != "" {
		b.WriteByte('{')
		b.WriteString(labels)
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(value)
	b.WriteByte('\n')
}

// formatFloat writes a value the way Prometheus does: shortest round-trip form, and
// +Inf, -Inf, NaN spelled as the format wants.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	// In HELP text only backslash and newline are escaped.
	helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	// In label values the double quote is escaped too.
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func renderLabels(names, values []string) string {
	var sb strings.Builder
	for i, n := range names {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(n)
		sb.WriteString(`="`)
		sb.WriteString(labelEscaper.Replace(values[i]))
		sb.WriteByte('"')
	}
	return sb.String()
}

func (d *family) check() error {
	if !validName(d.name, true) {
		return fmt.Errorf("metrics: invalid metric name %q", d.name)
	}
	seen := make(map[string]bool, len(d.labels))
	for _, l := range d.labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") {
			return fmt.Errorf("metrics: %s: invalid label name %q", d.name, l)
		}
		if seen[l] {
			return fmt.Errorf("metrics: %s: duplicate label name %q", d.name, l)
		}
		seen[l] = true
	}
	return nil
}

// check adds the bucket rules to the family's.
func (h *Histogram) check() error {
	if err := h.family.check(); err != nil {
		return err
	}
	for i, u := range h.upper {
		if math.IsNaN(u) || math.IsInf(u, 0) || i > 0 && u <= h.upper[i-1] {
			return fmt.Errorf("metrics: %s: bucket bounds %v: %w", h.name, h.upper, errBuckets)
		}
	}
	return nil
}

// validName checks [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; label names may not
// contain ':'.
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' ||
			(colon && r == ':') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// errBuckets is returned for histogram bounds that are not strictly increasing.
var errBuckets = errors.New("must be finite and strictly increasing (+Inf is implicit)")
