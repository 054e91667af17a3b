package metrics

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	var sb strings.Builder
	n, err := r.WriteTo(&sb)
	if err != nil {
		t.Fatal(err)
	}
	if int(n) != sb.Len() {
		t.Errorf("WriteTo returned %d, wrote %d bytes", n, sb.Len())
	}
	return sb.String()
}

func TestExposition(t *testing.T) {
	r := NewRegistry()
	up := NewCounter("iotgw_uplink_messages_total", "Messages received from devices.")
	dropped := NewCounterVec("iotgw_storage_dropped_total", "Records dropped.\nBy connector.", "connector", "reason")
	depth := NewGauge("iotgw_storage_depth", `Records waiting in storage (C:\data).`)
	uptime := NewGaugeFunc("iotgw_uptime_seconds", "", func() float64 { return 12.5 })
	acks := NewCounterFunc("iotgw_platform_acks_total", "PUBACKs received.", func() uint64 { return 7 })
	lat := NewHistogram("iotgw_publish_latency_seconds", "Time from publish to PUBACK.", []float64{0.01, 0.1, 1})
	emptyVec := NewCounterVec("iotgw_rpc_total", "RPCs.", "device")
	if err := r.Register(up, dropped, depth, uptime, acks, lat, emptyVec); err != nil {
		t.Fatal(err)
	}
	up.Add(41)
	up.Inc()
	c, err := dropped.With(`serial "A"`, "full")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(3)
	c2, _ := dropped.With(`back\slash`+"\n", "ttl")
	c2.Inc()
	c3, _ := dropped.With(`serial "A"`, "full")
	if c3 != c {
		t.Error("With returned a different counter for the same labels")
	}
	depth.Set(10)
	depth.Dec()
	depth.Add(0.5)
	for _, v := range []float64{0.005, 0.01, 0.05, 2} {
		lat.Observe(v)
	}
	lat.ObserveDuration(500 * time.Millisecond)

	want := `# HELP iotgw_platform_acks_total PUBACKs received.
# TYPE iotgw_platform_acks_total counter
iotgw_platform_acks_total 7
# HELP iotgw_publish_latency_seconds Time from publish to PUBACK.
# TYPE iotgw_publish_latency_seconds histogram
iotgw_publish_latency_seconds_bucket{le="0.01"} 2
iotgw_publish_latency_seconds_bucket{le="0.1"} 3
iotgw_publish_latency_seconds_bucket{le="1"} 4
iotgw_publish_latency_seconds_bucket{le="+Inf"} 5
iotgw_publish_latency_seconds_sum 2.565
iotgw_publish_latency_seconds_count 5
# HELP iotgw_storage_depth Records waiting in storage (C:\\data).
# TYPE iotgw_storage_depth gauge
iotgw_storage_depth 9.5
# HELP iotgw_storage_dropped_total Records dropped.\nBy connector.
# TYPE iotgw_storage_dropped_total counter
iotgw_storage_dropped_total{connector="back\\slash\n",reason="ttl"} 1
iotgw_storage_dropped_total{connector="serial \"A\"",reason="full"} 3
# HELP iotgw_uplink_messages_total Messages received from devices.
# TYPE iotgw_uplink_messages_total counter
iotgw_uplink_messages_total 42
# TYPE iotgw_uptime_seconds gauge
iotgw_uptime_seconds 12.5
`
	got := scrape(t, r)
	if got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
	if _, err := parseExposition(got); err != nil {
		t.Errorf("strict parse: %v\n%s", err, got)
	}
	// Stable: a second scrape without changes is byte-identical.
	if again := scrape(t, r); again != got {
		t.Errorf("second scrape differs:\n%s", again)
	}
}

func TestSpecialValues(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{math.Inf(1), "+Inf"},
		{math.Inf(-1), "-Inf"},
		{math.NaN(), "NaN"},
		{0, "0"},
		{-1.5, "-1.5"},
		{1e21, "1e+21"},
		{123456789, "1.23456789e+08"},
		{0.1, "0.1"},
	}
	for _, tt := range tests {
		r := NewRegistry()
		g := NewGauge("g", "")
		if err := r.Register(g); err != nil {
			t.Fatal(err)
		}
		g.Set(tt.v)
		got := scrape(t, r)
		if want := "# TYPE g gauge\ng " + tt.want + "\n"; got != want {
			t.Errorf("Set(%v): got %q, want %q", tt.v, got, want)
		}
		if _, err := parseExposition(got); err != nil {
			t.Errorf("Set(%v): strict parse: %v", tt.v, err)
		}
	}
}

func TestRegisterErrors(t *testing.T) {
	tests := []struct {
		name string
		m    Metric
		want string
	}{
		{"empty name", NewCounter("", ""), "invalid metric name"},
		{"leading digit", NewCounter("1abc", ""), "invalid metric name"},
		{"dash", NewGauge("a-b", ""), "invalid metric name"},
		{"colon ok in name, bad label", NewCounterVec("a:b", "", "x:y"), "invalid label name"},
		{"reserved label", NewCounterVec("a", "", "__name"), "invalid label name"},
		{"duplicate label", NewCounterVec("a", "", "x", "x"), "duplicate label name"},
		{"buckets not increasing", NewHistogram("h", "", []float64{1, 1}), "strictly increasing"},
		{"bucket NaN", NewHistogram("h", "", []float64{math.NaN()}), "strictly increasing"},
		{"bucket +Inf", NewHistogram("h", "", []float64{1, math.Inf(1)}), "strictly increasing"},
		{"duplicate name", NewCounter("taken", ""), "already registered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRegistry()
			if err := r.Register(NewGauge("taken", "")); err != nil {
				t.Fatal(err)
			}
			err := r.Register(tt.m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Register = %v, want error containing %q", err, tt.want)
			}
			if tt.name == "buckets not increasing" && !errors.Is(err, errBuckets) {
				t.Errorf("error %v does not wrap errBuckets", err)
			}
			// Nothing of a failed Register is added.
			if got := scrape(t, r); got != "# TYPE taken gauge\ntaken 0\n" {
				t.Errorf("registry after failed Register:\n%s", got)
			}
		})
	}
	// Duplicates inside one call are refused too, and nothing is added.
	r := NewRegistry()
	if err := r.Register(NewCounter("x", ""), NewGauge("x", "")); err == nil {
		t.Error("Register of two x: no error")
	}
	if got := scrape(t, r); got != "" {
		t.Errorf("registry after failed Register: %q", got)
	}
}

func TestWithLabelCount(t *testing.T) {
	v := NewCounterVec("v", "", "a", "b")
	if _, err := v.With("only-one"); err == nil || !strings.Contains(err.Error(), "got 1 label values, want 2") {
		t.Errorf("With(1 value) = %v", err)
	}
}

// TestConcurrent hammers every hot path while scraping; run with -race. At the end
// the totals must be exact.
func TestConcurrent(t *testing.T) {
	r := NewRegistry()
	c := NewCounter("c", "")
	v := NewCounterVec("v", "", "k")
	g := NewGauge("g", "")
	h := NewHistogram("h", "", LatencyBuckets)
	if err := r.Register(c, v, g, h); err != nil {
		t.Fatal(err)
	}
	const workers, n = 8, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	scraped := make(chan error, 1)
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var sb strings.Builder
			if _, err := r.WriteTo(&sb); err != nil {
				scraped <- err
				return
			}
			if _, err := parseExposition(sb.String()); err != nil {
				scraped <- err
				return
			}
		}
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			child, err := v.With([]string{"a", "b"}[w%2])
			if err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < n; i++ {
				c.Inc()
				child.Add(2)
				g.Add(1)
				h.Observe(0.25)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-scraped; err != nil {
		t.Fatalf("scrape during updates: %v", err)
	}
	fams, err := parseExposition(scrape(t, r))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"c": workers * n, `v{k="a"}`: workers * n, `v{k="b"}`: workers * n, "g": workers * n,
		"h_count": workers * n, "h_sum": workers * n * 0.25, `h_bucket{le="0.25"}`: workers * n,
		`h_bucket{le="0.1"}`: 0,
	}
	for series, w := range want {
		got, ok := fams.sample(series)
		if !ok || got != w {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, w)
		}
	}
}

func TestHotPathAllocs(t *testing.T) {
	c := NewCounter("c", "")
	g := NewGauge("g", "")
	h := NewHistogram("h", "", LatencyBuckets)
	v := NewCounterVec("v", "", "k")
	child, _ := v.With("x")
	allocs := testing.AllocsPerRun(1000, func() {
		c.Add(1)
		child.Inc()
		g.Set(3)
		h.Observe(0.02)
	})
	if allocs != 0 {
		t.Errorf("hot path allocates %v times per run", allocs)
	}
}

func BenchmarkCounterAdd(b *testing.B) {
	c := NewCounter("c", "")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(1)
		}
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := NewHistogram("h", "", LatencyBuckets)
	for i := 0; i < b.N; i++ {
		h.Observe(0.02)
	}
}

func BenchmarkScrape(b *testing.B) {
	r := NewRegistry()
	v := NewCounterVec("v", "help", "connector")
	for _, n := range []string{"a", "b", "c", "d"} {
		c, _ := v.With(n)
		c.Inc()
	}
	if err := r.Register(v, NewHistogram("h", "help", LatencyBuckets), NewGauge("g", "help")); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	for i := 0; i < b.N; i++ {
		sb.Reset()
		if _, err := r.WriteTo(&sb); err != nil {
			b.Fatal(err)
		}
	}
}
