package platform

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Point is one telemetry value of one key.
type Point struct {
	// TS is the value's timestamp in Unix milliseconds, as the gateway sent it.
	TS int64 `json:"ts"`
	// Value is the value as JSON (a number, string, bool or object).
	Value json.RawMessage `json:"value"`
}

// ring keeps the last values of one key; the oldest goes when it is full.
type ring struct {
	buf  []Point
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]Point, n)} }

func (r *ring) add(p Point) {
	r.buf[r.next] = p
	r.next++
	if r.next == len(r.buf) {
		r.next = 0
		r.full = true
	}
}

// last returns up to n points, oldest first.
func (r *ring) last(n int) []Point {
	size := r.next
	if r.full {
		size = len(r.buf)
	}
	n = min(n, size)
	out := make([]Point, 0, n)
	for i := size - n; i < size; i++ {
		idx := i
		if r.full {
			idx = (r.next + i) % len(r.buf)
		}
		out = append(out, r.buf[idx])
	}
	return out
}

func (r *ring) latest() (Point, bool) {
	if !r.full && r.next == 0 {
		return Point{}, false
	}
	return r.buf[(r.next-1+len(r.buf))%len(r.buf)], true
}

// device is what the platform knows of one device. Guarded by Platform.mu.
type device struct {
	name      string
	typ       string
	gateway   string // MQTT client id of the gateway that reported it
	connected bool
	lastSeen  time.Time
	client    map[string]json.RawMessage // client-side attributes (from the gateway)
	shared    map[string]json.RawMessage // shared attributes (sent by the platform)
	telemetry map[string]*ring
}

func newDevice(name string) *device {
	return &device{name: name, typ: "default", client: map[string]json.RawMessage{},
		shared: map[string]json.RawMessage{}, telemetry: map[string]*ring{}}
}

// Device is the JSON view of a device in the HTTP API.
type Device struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Gateway   string    `json:"gateway,omitempty"`
	Connected bool      `json:"connected"`
	LastSeen  time.Time `json:"lastSeen"`
	// Latest has the newest value of every telemetry key.
	Latest map[string]Point `json:"latest"`
}

func (d *device) view() Device {
	v := Device{Name: d.name, Type: d.typ, Gateway: d.gateway, Connected: d.connected,
		LastSeen: d.lastSeen, Latest: map[string]Point{}}
	for k, r := range d.telemetry {
		if p, ok := r.latest(); ok {
			v.Latest[k] = p
		}
	}
	return v
}

// Attributes is the JSON view of a device's attributes.
type Attributes struct {
	// Client attributes are reported by the gateway (v1/gateway/attributes).
	Client map[string]json.RawMessage `json:"client"`
	// Shared attributes are the ones the platform sent to the device.
	Shared map[string]json.RawMessage `json:"shared"`
}

func (d *device) attributes() Attributes {
	return Attributes{Client: maps.Clone(d.client), Shared: maps.Clone(d.shared)}
}

func (d *device) keys() []string {
	return slices.Sorted(maps.Keys(d.telemetry))
}
