package report

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/iotgw/iotgw/connector"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeClock is a manual clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t0.Add(d)
	return c.now
}

func rs(typ string, periodMS, ttlS int64) *connector.ReportStrategy {
	return &connector.ReportStrategy{Type: typ, ReportPeriod: periodMS, TTL: ttlS}
}

func tel(dev string, ts int64, kv ...any) *connector.ConvertedData {
	d := &connector.ConvertedData{DeviceName: dev, DeviceType: "default"}
	var vals []connector.Datapoint
	for i := 0; i < len(kv); i += 2 {
		vals = append(vals, connector.Datapoint{Key: kv[i].(string), Value: connector.ValueOf(kv[i+1])})
	}
	d.AddTelemetry(ts, vals...)
	return d
}

// step is one event of a scenario: at time at, either data arrives (in != nil) and
// Filter must return want, or the scheduler ticks and must return wantTick.
type step struct {
	at       time.Duration
	in       *connector.ConvertedData
	want     *connector.ConvertedData
	tick     bool
	wantTick []*connector.ConvertedData
}

func runSteps(t *testing.T, e *Engine, clk *fakeClock, conn, dev *connector.ReportStrategy, steps []step) {
	t.Helper()
	for i, s := range steps {
		now := clk.Set(s.at)
		if s.tick {
			got := e.Tick(now)
			if !reflect.DeepEqual(got, s.wantTick) {
				t.Fatalf("step %d (tick at %v): got %s, want %s", i, s.at, dump(got...), dump(s.wantTick...))
			}
			continue
		}
		got := e.Filter(conn, dev, s.in)
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d (data at %v): got %s, want %s", i, s.at, dump(got), dump(s.want))
		}
	}
}

func dump(ds ...*connector.ConvertedData) string {
	s := "["
	for _, d := range ds {
		if d == nil {
			s += "nil "
			continue
		}
		s += d.DeviceName + "{"
		for _, te := range d.Telemetry {
			s += fmt.Sprintf("ts=%d:", te.TS)
			for _, v := range te.Values {
				s += fmt.Sprintf("%s=%s,", v.Key, v.Value.AppendJSON(nil))
			}
			s += " "
		}
		for _, v := range d.Attributes {
			s += fmt.Sprintf("attr %s=%s,", v.Key, v.Value.AppendJSON(nil))
		}
		s += "} "
	}
	return s + "]"
}

func TestStrategies(t *testing.T) {
	sec := time.Second
	tests := []struct {
		name       string
		gw         connector.ReportStrategy
		conn, dev  *connector.ReportStrategy
		opts       Options
		steps      []step
		wantCached int
	}{
		{
			name: "ON_RECEIVED sends everything",
			gw:   connector.ReportStrategy{Type: connector.OnReceived},
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1.5), want: tel("D", 1, "t", 1.5)},
				{at: sec, in: tel("D", 2, "t", 1.5), want: tel("D", 2, "t", 1.5)},
				{at: 20 * sec, tick: true},
			},
		},
		{
			name: "ON_CHANGE compares with the last sent value, floats within 0.001",
			gw:   connector.ReportStrategy{Type: connector.OnChange},
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1.0), want: tel("D", 1, "t", 1.0)},
				{at: sec, in: tel("D", 2, "t", 1.0005), want: nil},
				{at: 2 * sec, in: tel("D", 3, "t", 1.0009), want: nil},
				{at: 3 * sec, in: tel("D", 4, "t", 1.0012), want: tel("D", 4, "t", 1.0012)},
				{at: 4 * sec, in: tel("D", 5, "t", 1.0015), want: nil},
				{at: 5 * sec, in: tel("D", 6, "t", "x"), want: tel("D", 6, "t", "x")},
				{at: 6 * sec, in: tel("D", 7, "t", "x"), want: nil},
				{at: 7 * sec, in: tel("D", 8, "t", true), want: tel("D", 8, "t", true)},
				{at: 8 * sec, tick: true},
			},
			wantCached: 1,
		},
		{
			name: "ON_CHANGE: an int and the same float are equal",
			gw:   connector.ReportStrategy{Type: connector.OnChange},
			steps: []step{
				{at: 0, in: tel("D", 1, "n", int64(3)), want: tel("D", 1, "n", int64(3))},
				{at: sec, in: tel("D", 2, "n", 3.0004), want: nil},
				{at: 2 * sec, in: tel("D", 3, "n", int64(4)), want: tel("D", 3, "n", int64(4))},
			},
			wantCached: 1,
		},
		{
			name: "ON_CHANGE keeps only the changed keys of a message",
			gw:   connector.ReportStrategy{Type: connector.OnChange},
			steps: []step{
				{at: 0, in: tel("D", 1, "a", 1, "b", 2, "c", 3), want: tel("D", 1, "a", 1, "b", 2, "c", 3)},
				{at: sec, in: tel("D", 2, "a", 1, "b", 5, "c", 3), want: tel("D", 2, "b", 5)},
				{at: 2 * sec, in: tel("D", 3, "a", 9, "b", 5, "c", 3), want: tel("D", 3, "a", 9)},
				{at: 3 * sec, in: tel("D", 4, "a", 9, "b", 5, "c", 7), want: tel("D", 4, "c", 7)},
			},
			wantCached: 3,
		},
		{
			name: "ON_CHANGE: ttl expiry sends the same value again",
			gw:   connector.ReportStrategy{Type: connector.OnChange, TTL: 60},
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1), want: tel("D", 1, "t", 1)},
				{at: 59 * sec, in: tel("D", 2, "t", 1), want: nil},
				{at: 118 * sec, in: tel("D", 3, "t", 1), want: nil},
				{at: 178 * sec, in: tel("D", 4, "t", 1), want: tel("D", 4, "t", 1)},
			},
			wantCached: 1,
		},
		{
			name: "ON_CHANGE: the scheduler drops expired entries",
			gw:   connector.ReportStrategy{Type: connector.OnChange, TTL: 10},
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1), want: tel("D", 1, "t", 1)},
				{at: 10 * sec, tick: true},
			},
			wantCached: 0,
		},
		{
			name: "ON_REPORT_PERIOD caches and re-sends the latest value with its ts",
			gw:   connector.ReportStrategy{Type: connector.OnReportPeriod, ReportPeriod: 5000},
			steps: []step{
				{at: 0, in: tel("D", 100, "t", 1), want: tel("D", 100, "t", 1)},
				{at: sec, in: tel("D", 101, "t", 2), want: nil},
				{at: 2 * sec, in: tel("D", 102, "t", 3), want: nil},
				{at: 4999 * time.Millisecond, tick: true},
				{at: 5 * sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", 102, "t", 3)}},
				{at: 6 * sec, tick: true},
				{at: 10 * sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", 102, "t", 3)}},
				{at: 11 * sec, in: tel("D", 111, "t", 3), want: nil},
				{at: 15 * sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", 111, "t", 3)}},
			},
			wantCached: 1,
		},
		{
			name: "ON_REPORT_PERIOD keeps its cadence and restarts after a stall",
			gw:   connector.ReportStrategy{Type: connector.OnReportPeriod, ReportPeriod: 1000},
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1), want: tel("D", 1, "t", 1)},
				{at: 1010 * time.Millisecond, tick: true, wantTick: []*connector.ConvertedData{tel("D", 1, "t", 1)}},
				{at: 1999 * time.Millisecond, tick: true},
				{at: 2 * sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", 1, "t", 1)}},
				{at: 5500 * time.Millisecond, tick: true, wantTick: []*connector.ConvertedData{tel("D", 1, "t", 1)}},
				{at: 6 * sec, tick: true},
				{at: 6500 * time.Millisecond, tick: true, wantTick: []*connector.ConvertedData{tel("D", 1, "t", 1)}},
			},
			wantCached: 1,
		},
		{
			name: "ON_REPORT_PERIOD stops re-sending ttl after the last update",
			gw:   connector.ReportStrategy{Type: connector.OnReportPeriod, ReportPeriod: 4000, TTL: 10},
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1), want: tel("D", 1, "t", 1)},
				{at: 4 * sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", 1, "t", 1)}},
				{at: 8 * sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", 1, "t", 1)}},
				{at: 12 * sec, tick: true},
			},
			wantCached: 0,
		},
		{
			name: "ON_CHANGE_OR_REPORT_PERIOD sends on change and re-sends after a quiet period",
			gw:   connector.ReportStrategy{Type: connector.OnChangeOrReportPeriod, ReportPeriod: 3000},
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1), want: tel("D", 1, "t", 1)},
				{at: sec, in: tel("D", 2, "t", 1), want: nil},
				{at: 2 * sec, in: tel("D", 3, "t", 2), want: tel("D", 3, "t", 2)},
				{at: 3 * sec, tick: true},
				{at: 4 * sec, in: tel("D", 4, "t", 2.0001), want: nil},
				{at: 5 * sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", 3, "t", 2)}},
				{at: 6 * sec, in: tel("D", 6, "t", 7), want: tel("D", 6, "t", 7)},
				{at: 8 * sec, tick: true},
				{at: 9 * sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", 6, "t", 7)}},
			},
			wantCached: 1,
		},
		{
			name: "ResendWithCurrentTS stamps re-sends with the tick time",
			gw:   connector.ReportStrategy{Type: connector.OnReportPeriod, ReportPeriod: 1000},
			opts: Options{ResendWithCurrentTS: true},
			steps: []step{
				{at: 0, in: tel("D", 7, "t", 1), want: tel("D", 7, "t", 1)},
				{at: sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", t0.Add(time.Second).UnixMilli(), "t", 1)}},
			},
			wantCached: 1,
		},
		{
			name: "gateway DISABLED: no filtering, lower levels ignored",
			gw:   connector.ReportStrategy{Type: connector.Disabled},
			conn: rs(connector.OnChange, 0, 0),
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1), want: tel("D", 1, "t", 1)},
				{at: sec, in: tel("D", 2, "t", 1), want: tel("D", 2, "t", 1)},
			},
		},
		{
			name: "connector DISABLED means ON_RECEIVED, not drop after the first value",
			gw:   connector.ReportStrategy{Type: connector.OnChange},
			conn: rs(connector.Disabled, 0, 0),
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1), want: tel("D", 1, "t", 1)},
				{at: sec, in: tel("D", 2, "t", 1), want: tel("D", 2, "t", 1)},
				{at: 2 * sec, in: tel("D", 3, "t", 2), want: tel("D", 3, "t", 2)},
			},
		},
		{
			name: "device level wins over connector and gateway",
			gw:   connector.ReportStrategy{Type: connector.OnReportPeriod, ReportPeriod: 1000},
			conn: rs(connector.OnReceived, 0, 0),
			dev:  rs(connector.OnChange, 0, 0),
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1), want: tel("D", 1, "t", 1)},
				{at: sec, in: tel("D", 2, "t", 1), want: nil},
				{at: 5 * sec, tick: true},
			},
			wantCached: 1,
		},
		{
			name: "periodic device type without period inherits the connector's",
			conn: rs(connector.OnChange, 2000, 0),
			dev:  rs(connector.OnReportPeriod, 0, 0),
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1), want: tel("D", 1, "t", 1)},
				{at: 1999 * time.Millisecond, tick: true},
				{at: 2 * sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", 1, "t", 1)}},
			},
			wantCached: 1,
		},
		{
			name: "periodic type with no period anywhere uses DefaultReportPeriod, never 1 ms",
			dev:  rs(connector.OnReportPeriod, 0, 0),
			steps: []step{
				{at: 0, in: tel("D", 1, "t", 1), want: tel("D", 1, "t", 1)},
				{at: 9 * sec, tick: true},
				{at: 10 * sec, tick: true, wantTick: []*connector.ConvertedData{tel("D", 1, "t", 1)}},
			},
			wantCached: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{now: t0}
			tt.opts.Now = clk.Now
			e := New(tt.gw, tt.opts)
			runSteps(t, e, clk, tt.conn, tt.dev, tt.steps)
			if got := e.Len(); got != tt.wantCached {
				t.Errorf("Len() = %d, want %d", got, tt.wantCached)
			}
		})
	}
}

func TestDatapointStrategyWins(t *testing.T) {
	clk := &fakeClock{now: t0}
	e := New(connector.ReportStrategy{Type: connector.OnChange}, Options{Now: clk.Now})
	mk := func(ts int64, a, b, c int) *connector.ConvertedData {
		d := &connector.ConvertedData{DeviceName: "D", DeviceType: "meter"}
		d.AddTelemetry(ts,
			connector.Datapoint{Key: "a", Value: connector.Int(int64(a))},
			connector.Datapoint{Key: "b", Value: connector.Int(int64(b)), Strategy: rs(connector.OnReceived, 0, 0)},
			connector.Datapoint{Key: "c", Value: connector.Int(int64(c)), Strategy: rs(connector.OnReportPeriod, 1000, 0)},
		)
		d.Attributes = []connector.Datapoint{
			{Key: "fw", Value: connector.String("1.0")},
			{Key: "a", Value: connector.Int(int64(a)), Strategy: rs(connector.Disabled, 0, 0)},
		}
		return d
	}
	if got, in := e.Filter(nil, nil, mk(1, 1, 1, 1)), mk(1, 1, 1, 1); !reflect.DeepEqual(got, in) {
		t.Fatalf("first: got %s", dump(got))
	}
	clk.Set(500 * time.Millisecond)
	got := e.Filter(nil, nil, mk(2, 1, 1, 2))
	want := &connector.ConvertedData{DeviceName: "D", DeviceType: "meter"}
	want.AddTelemetry(2, connector.Datapoint{Key: "b", Value: connector.Int(1), Strategy: rs(connector.OnReceived, 0, 0)})
	want.Attributes = []connector.Datapoint{{Key: "a", Value: connector.Int(1), Strategy: rs(connector.Disabled, 0, 0)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("second: got %s, want %s", dump(got), dump(want))
	}
	// a (telemetry, ON_CHANGE), fw (attribute, ON_CHANGE), c (ON_REPORT_PERIOD).
	if e.Len() != 3 {
		t.Fatalf("Len = %d, want 3", e.Len())
	}
	ticks := e.Tick(clk.Set(time.Second))
	wantTick := &connector.ConvertedData{DeviceName: "D", DeviceType: "meter"}
	wantTick.AddTelemetry(2, connector.Datapoint{Key: "c", Value: connector.Int(2)})
	if !reflect.DeepEqual(ticks, []*connector.ConvertedData{wantTick}) {
		t.Fatalf("tick: got %s", dump(ticks...))
	}
}

func TestTelemetryAndAttributesAreSeparateKeys(t *testing.T) {
	clk := &fakeClock{now: t0}
	e := New(connector.ReportStrategy{Type: connector.OnChange}, Options{Now: clk.Now})
	d := &connector.ConvertedData{DeviceName: "D"}
	d.AddTelemetry(1, connector.Datapoint{Key: "k", Value: connector.Int(1)})
	d.AddAttribute("k", connector.Int(2))
	if got := e.Filter(nil, nil, d); got != d {
		t.Fatalf("first values must pass unchanged, got %s", dump(got))
	}
	d2 := &connector.ConvertedData{DeviceName: "D"}
	d2.AddTelemetry(2, connector.Datapoint{Key: "k", Value: connector.Int(2)})
	d2.AddAttribute("k", connector.Int(2))
	want := &connector.ConvertedData{DeviceName: "D"}
	want.AddTelemetry(2, connector.Datapoint{Key: "k", Value: connector.Int(2)})
	if got := e.Filter(nil, nil, d2); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %s, want %s", dump(got), dump(want))
	}
}

func TestFilterDoesNotModifyInput(t *testing.T) {
	clk := &fakeClock{now: t0}
	e := New(connector.ReportStrategy{Type: connector.OnChange}, Options{Now: clk.Now})
	e.Filter(nil, nil, tel("D", 1, "a", 1, "b", 1))
	in := tel("D", 2, "a", 1, "b", 2)
	in.AddTelemetry(3, connector.Datapoint{Key: "a", Value: connector.Int(5)})
	in.AddAttribute("x", connector.Int(1))
	snapshot := tel("D", 2, "a", 1, "b", 2)
	snapshot.AddTelemetry(3, connector.Datapoint{Key: "a", Value: connector.Int(5)})
	snapshot.AddAttribute("x", connector.Int(1))
	got := e.Filter(nil, nil, in)
	if !reflect.DeepEqual(in, snapshot) {
		t.Fatalf("input modified: %s", dump(in))
	}
	want := tel("D", 2, "b", 2)
	want.AddTelemetry(3, connector.Datapoint{Key: "a", Value: connector.Int(5)})
	want.AddAttribute("x", connector.Int(1))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %s, want %s", dump(got), dump(want))
	}
}

func TestResendGroupsPerDevice(t *testing.T) {
	clk := &fakeClock{now: t0}
	e := New(connector.ReportStrategy{Type: connector.OnReportPeriod, ReportPeriod: 1000}, Options{Now: clk.Now})
	b := tel("B", 5, "y", 2, "x", 1)
	b.AddTelemetry(4, connector.Datapoint{Key: "z", Value: connector.Int(3)})
	b.AddAttribute("fw", connector.String("2"))
	e.Filter(nil, nil, b)
	e.Filter(nil, nil, tel("A", 9, "t", 1))
	got := e.Tick(clk.Set(time.Second))
	wantB := &connector.ConvertedData{DeviceName: "B", DeviceType: "default"}
	wantB.AddTelemetry(4, connector.Datapoint{Key: "z", Value: connector.Int(3)})
	wantB.AddTelemetry(5, connector.Datapoint{Key: "x", Value: connector.Int(1)}, connector.Datapoint{Key: "y", Value: connector.Int(2)})
	wantB.AddAttribute("fw", connector.String("2"))
	want := []*connector.ConvertedData{tel("A", 9, "t", 1), wantB}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %s, want %s", dump(got...), dump(want...))
	}
}

func TestMaxEntriesEvictsOldest(t *testing.T) {
	clk := &fakeClock{now: t0}
	e := New(connector.ReportStrategy{Type: connector.OnChange}, Options{Now: clk.Now, MaxEntries: 3})
	for i, k := range []string{"a", "b", "c"} {
		clk.Set(time.Duration(i) * time.Second)
		e.Filter(nil, nil, tel("D", 1, k, 1))
	}
	clk.Set(3 * time.Second)
	if got := e.Filter(nil, nil, tel("D", 2, "a", 1)); got != nil { // a is now the newest
		t.Fatalf("unchanged a passed: %s", dump(got))
	}
	e.Filter(nil, nil, tel("E", 1, "d", 1)) // evicts b, the oldest
	if e.Len() != 3 {
		t.Fatalf("Len = %d, want 3", e.Len())
	}
	clk.Set(4 * time.Second)
	if got := e.Filter(nil, nil, tel("D", 3, "b", 1)); got == nil {
		t.Fatal("b was not evicted: its unchanged value was dropped")
	}
	if got := e.Filter(nil, nil, tel("D", 3, "a", 1)); got != nil {
		t.Fatal("a was evicted, but it was recently updated")
	}
}

func TestForgetAndRename(t *testing.T) {
	clk := &fakeClock{now: t0}
	e := New(connector.ReportStrategy{Type: connector.OnChangeOrReportPeriod, ReportPeriod: 1000}, Options{Now: clk.Now})
	e.Filter(nil, nil, tel("old", 1, "t", 1))
	e.Filter(nil, nil, tel("gone", 1, "t", 1))
	e.Filter(nil, nil, tel("new", 1, "stale", 1))
	e.Forget("gone")
	e.Forget("unknown")
	e.Rename("old", "new")
	e.Rename("nobody", "x")
	if e.Len() != 1 {
		t.Fatalf("Len = %d, want 1", e.Len())
	}
	got := e.Tick(clk.Set(time.Second))
	want := []*connector.ConvertedData{tel("new", 1, "t", 1)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tick after rename: got %s, want %s", dump(got...), dump(want...))
	}
	// The renamed device's cache carries on: an unchanged value is still dropped.
	if got := e.Filter(nil, nil, tel("new", 2, "t", 1)); got != nil {
		t.Fatalf("unchanged value under the new name passed: %s", dump(got))
	}
	if got := e.Filter(nil, nil, tel("gone", 2, "t", 1)); got == nil {
		t.Fatal("a forgotten device's value must be sent as a first value")
	}
}

func TestFastPathDoesNotAllocate(t *testing.T) {
	d := tel("D", 1, "a", 1, "b", 2.5, "c", "x")
	d.AddAttribute("fw", connector.String("1"))
	for _, tt := range []struct {
		name      string
		gw        connector.ReportStrategy
		conn, dev *connector.ReportStrategy
	}{
		{"default", connector.ReportStrategy{}, nil, nil},
		{"all ON_RECEIVED", connector.ReportStrategy{Type: connector.OnReceived}, rs(connector.OnReceived, 0, 0), rs(connector.Disabled, 0, 0)},
		{"gateway DISABLED", connector.ReportStrategy{Type: connector.Disabled}, rs(connector.OnChange, 0, 0), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := New(tt.gw, Options{})
			allocs := testing.AllocsPerRun(100, func() {
				if e.Filter(tt.conn, tt.dev, d) != d {
					t.Fatal("fast path must return its input")
				}
			})
			if allocs != 0 {
				t.Fatalf("allocs = %v, want 0", allocs)
			}
			if e.Len() != 0 {
				t.Fatalf("fast path cached %d values", e.Len())
			}
		})
	}
}

func TestRunEmitsPeriodically(t *testing.T) {
	got := make(chan *connector.ConvertedData, 16)
	e := New(connector.ReportStrategy{Type: connector.OnReportPeriod, ReportPeriod: 20}, Options{
		Emit: func(d *connector.ConvertedData) { got <- d },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Run is idle with an empty cache; the first value wakes it up.
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	if out := e.Filter(nil, nil, tel("D", 42, "t", 1)); out == nil {
		t.Fatal("first value must pass")
	}
	for i := 0; i < 3; i++ {
		select {
		case d := <-got:
			if want := tel("D", 42, "t", 1); !reflect.DeepEqual(d, want) {
				t.Fatalf("emit %d: got %s", i, dump(d))
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("no emit %d", i)
		}
	}
	if el := time.Since(start); el < 55*time.Millisecond {
		t.Fatalf("3 periods of 20 ms took %v", el)
	}
}

func TestConcurrentUse(t *testing.T) {
	e := New(connector.ReportStrategy{Type: connector.OnChangeOrReportPeriod, ReportPeriod: 1}, Options{
		MaxEntries: 50,
		Emit:       func(*connector.ConvertedData) {},
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.Run(ctx) }()
	var workers sync.WaitGroup
	for g := 0; g < 4; g++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := 0; i < 2000; i++ {
				dev := fmt.Sprintf("d%d", i%7)
				e.Filter(nil, nil, tel(dev, int64(i), fmt.Sprintf("k%d", i%13), i%3))
				switch i % 500 {
				case 1:
					e.Forget(dev)
				case 2:
					e.Rename(dev, dev+"x")
				}
			}
		}()
	}
	workers.Wait()
	cancel()
	wg.Wait()
	if n := e.Len(); n > 50 {
		t.Fatalf("Len = %d past MaxEntries", n)
	}
}

func BenchmarkFilterOnReceived(b *testing.B) {
	e := New(connector.ReportStrategy{}, Options{})
	d := tel("D", 1, "a", 1, "b", 2.5, "c", "x")
	b.ReportAllocs()
	for b.Loop() {
		e.Filter(nil, nil, d)
	}
}

func BenchmarkFilterOnChangeUnchanged(b *testing.B) {
	e := New(connector.ReportStrategy{Type: connector.OnChange}, Options{})
	d := tel("D", 1, "a", 1, "b", 2.5, "c", "x")
	e.Filter(nil, nil, d)
	b.ReportAllocs()
	for b.Loop() {
		e.Filter(nil, nil, d)
	}
}

func TestLargeMessage(t *testing.T) {
	clk := &fakeClock{now: t0}
	e := New(connector.ReportStrategy{Type: connector.OnChange}, Options{Now: clk.Now})
	mk := func(ts int64, changed func(i int) bool) (*connector.ConvertedData, *connector.ConvertedData) {
		in := &connector.ConvertedData{DeviceName: "D"}
		want := &connector.ConvertedData{DeviceName: "D"}
		var vals, wantVals []connector.Datapoint
		for i := 0; i < 300; i++ {
			v := int64(0)
			if changed(i) {
				v = ts
			}
			dp := connector.Datapoint{Key: fmt.Sprintf("k%03d", i), Value: connector.Int(v)}
			vals = append(vals, dp)
			if changed(i) {
				wantVals = append(wantVals, dp)
			}
		}
		in.AddTelemetry(ts, vals...)
		want.AddTelemetry(ts, wantVals...)
		return in, want
	}
	first, _ := mk(1, func(int) bool { return false })
	if got := e.Filter(nil, nil, first); got != first {
		t.Fatal("first values must pass")
	}
	in, want := mk(2, func(i int) bool { return i%7 == 0 || i > 290 })
	if got := e.Filter(nil, nil, in); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %s", dump(got))
	}
	same, _ := mk(2, func(i int) bool { return i%7 == 0 || i > 290 })
	if got := e.Filter(nil, nil, same); got != nil {
		t.Fatalf("unchanged: got %s", dump(got))
	}
}

func TestOnChangeUnchangedDoesNotAllocate(t *testing.T) {
	e := New(connector.ReportStrategy{Type: connector.OnChange}, Options{})
	d := tel("D", 1, "a", 1, "b", 2.5, "c", "x")
	e.Filter(nil, nil, d)
	if allocs := testing.AllocsPerRun(100, func() { e.Filter(nil, nil, d) }); allocs != 0 {
		t.Fatalf("allocs = %v, want 0", allocs)
	}
}
