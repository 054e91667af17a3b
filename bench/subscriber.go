package main

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// telemetryTopic is where a ThingsBoard gateway publishes its devices' telemetry.
const telemetryTopic = "v1/gateway/telemetry"

// subscriber counts the frames that reach the broker on the gateway API topic:
// per device which sequence numbers arrived (duplicates of at-least-once delivery
// are counted once), and the latency of each frame (its send stamp to the arrival
// of its message here).
type subscriber struct {
	client paho.Client

	mu        sync.Mutex
	devices   map[string]*received
	frames    int // unique frames
	dups      int
	foreign   int // entries without seq/sent or of unknown devices
	messages  int
	latencies []int64 // µs, one per unique frame
	first     time.Time
	last      time.Time
	changed   chan struct{}
}

type received struct {
	seen []uint64 // bitmap of seq-1
}

func newSubscriber(addr string, devices []*device, frames int) (*subscriber, error) {
	s := &subscriber{devices: make(map[string]*received, len(devices)), changed: make(chan struct{}, 1)}
	for _, d := range devices {
		s.devices[d.name] = &received{seen: make([]uint64, (frames+63)/64)}
	}
	s.latencies = make([]int64, 0, len(devices)*frames)
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(fmt.Sprintf("bench-sub-%d", time.Now().UnixNano())).
		SetUsername("bench-subscriber").SetCleanSession(true).
		SetAutoReconnect(false).SetOrderMatters(true).SetKeepAlive(60 * time.Second)
	s.client = paho.NewClient(opts)
	if t := s.client.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("subscriber connect to %s: %v", addr, t.Error())
	}
	t := s.client.Subscribe(telemetryTopic, 1, func(_ paho.Client, m paho.Message) { s.onMessage(m.Payload()) })
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		s.client.Disconnect(0)
		return nil, fmt.Errorf("subscribe %s: %v", telemetryTopic, t.Error())
	}
	return s, nil
}

func (s *subscriber) close() { s.client.Disconnect(100) }

func (s *subscriber) onMessage(p []byte) {
	now := time.Now()
	nowUS := now.UnixMicro()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages++
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	scanTelemetry(p, func(dev []byte, seq, sent int64) {
		r := s.devices[string(dev)]
		if r == nil || seq < 1 || int(seq) > len(r.seen)*64 {
			s.foreign++
			return
		}
		w, bit := (seq-1)/64, uint64(1)<<((seq-1)%64)
		if r.seen[w]&bit != 0 {
			s.dups++
			return
		}
		r.seen[w] |= bit
		s.frames++
		s.latencies = append(s.latencies, nowUS-sent)
	})
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// snapshot returns the unique frames received so far and when the last message came.
func (s *subscriber) snapshot() (frames int, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames, s.last
}

// scanTelemetry walks a gateway telemetry message
// {"DEV":[{"ts":1,"values":{"T":21.5,"seq":1,"sent":2}},...],...} without decoding
// it into values and calls f for every entry with seq and sent. It accepts any
// nesting under the device (values directly in the entry, as some gateways send)
// and numbers written as strings. Malformed input ends the walk.
func scanTelemetry(p []byte, f func(dev []byte, seq, sent int64)) {
	var stack [16]byte // open brackets; deeper nesting is not followed
	depth := 0
	var dev, key []byte
	var seq, sent int64 = -1, -1
	expectKey := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '{', '[':
			if depth < len(stack) {
				stack[depth] = c
			}
			depth++
			expectKey = c == '{'
		case '}', ']':
			if depth == 3 {
				if seq >= 0 && sent >= 0 {
					f(dev, seq, sent)
				}
				seq, sent = -1, -1
			}
			depth--
			if depth < 0 {
				return
			}
			expectKey = false
		case ',':
			expectKey = depth > 0 && depth <= len(stack) && stack[depth-1] == '{'
		case '"':
			j := i + 1
			for j < len(p) && p[j] != '"' {
				if p[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(p) {
				return
			}
			str := p[i+1 : j]
			i = j
			switch {
			case !expectKey:
				// a string value: seq or sent written as a string
				if key != nil {
					assign(key, str, &seq, &sent)
					key = nil
				}
			case depth == 1:
				dev, expectKey = str, false
			default:
				key, expectKey = str, false
			}
		case ':':
			// a number value follows a key at depth ≥ 3
			if key == nil || depth < 3 {
				key = nil
				continue
			}
			k := i + 1
			for k < len(p) && (p[k] == ' ' || p[k] == '\t' || p[k] == '\n' || p[k] == '\r') {
				k++
			}
			if k < len(p) && p[k] == '"' {
				continue // assigned when the string is read
			}
			e := k
			for e < len(p) && (p[e] == '-' || p[e] == '.' || p[e] == '+' || p[e] == 'e' || p[e] == 'E' || (p[e] >= '0' && p[e] <= '9')) {
				e++
			}
			assign(key, p[k:e], &seq, &sent)
			key = nil
			i = e - 1
		}
	}
}

func assign(key, val []byte, seq, sent *int64) {
	var dst *int64
	switch {
	case bytes.Equal(key, []byte("seq")):
		dst = seq
	case bytes.Equal(key, []byte("sent")):
		dst = sent
	default:
		return
	}
	if n, err := strconv.ParseInt(string(val), 10, 64); err == nil {
		*dst = n
	} else if fl, err := strconv.ParseFloat(string(val), 64); err == nil {
		*dst = int64(fl)
	}
}
