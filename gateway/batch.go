package gateway

import (
	"github.com/iotgw/iotgw/connector"
)

// message is one MQTT publish made from storage records.
type message struct {
	topic   string
	payload []byte
	values  int // datapoints (telemetry values and attributes) it carries
}

// group gathers one device's fragments within a batch.
type group struct {
	device []byte
	name   []byte // device as a JSON string
	tel    [][]byte
	attr   [][]byte
	telN   []int // values in each tel fragment
	attrN  []int // attributes in each attr fragment
}

// batcher merges records into v1/gateway/telemetry and v1/gateway/attributes
// messages: {"D1":[e1,e2],"D2":[e3]} and {"D1":{"k":v},...}. Fragments of one device
// keep their order, and messages are emitted in order, so per-device order survives.
// A message grows until the next fragment would pass maxSize; a single fragment
// larger than maxSize goes alone.
type batcher struct {
	maxSize int
	groups  []group
	index   map[string]int
	out     []message
	// names interns device names with their JSON encoding across batches, so that a
	// batch allocates nothing per device (bounded: reset past maxNames).
	names map[string]*deviceName
}

// deviceName is an interned device name and its JSON string.
type deviceName struct {
	name string
	json []byte
}

// maxNames bounds the name cache; a gateway with more devices re-encodes names.
const maxNames = 16 << 10

func newBatcher(maxSize int) *batcher {
	if maxSize < 256 {
		maxSize = 256
	}
	return &batcher{maxSize: maxSize, index: make(map[string]int), names: make(map[string]*deviceName)}
}

// name returns the interned name of device (the map lookup does not allocate).
func (b *batcher) name(device []byte) *deviceName {
	if n, ok := b.names[string(device)]; ok {
		return n
	}
	if len(b.names) >= maxNames {
		clear(b.names)
	}
	s := string(device)
	n := &deviceName{name: s, json: connector.AppendJSONString(make([]byte, 0, len(s)+2), s)}
	b.names[s] = n
	return n
}

func (b *batcher) add(r record) {
	i, ok := b.index[string(r.device)]
	if !ok {
		n := b.name(r.device)
		i = len(b.groups)
		if i < cap(b.groups) {
			b.groups = b.groups[:i+1]
			g := &b.groups[i]
			g.device, g.name, g.tel, g.attr = r.device, n.json, g.tel[:0], g.attr[:0]
			g.telN, g.attrN = g.telN[:0], g.attrN[:0]
		} else {
			b.groups = append(b.groups, group{device: r.device, name: n.json})
		}
		b.index[n.name] = i
	}
	g := &b.groups[i]
	if len(r.telemetry) > 0 {
		g.tel = append(g.tel, r.telemetry)
		g.telN = append(g.telN, r.telValues)
	}
	if len(r.attributes) > 0 {
		g.attr = append(g.attr, r.attributes)
		g.attrN = append(g.attrN, r.attrValues)
	}
}

// flush turns the gathered groups into messages appended to b.out and resets.
func (b *batcher) flush(telemetryTopic, attributesTopic string) {
	if len(b.groups) == 0 {
		return
	}
	b.emit(telemetryTopic, true)
	b.emit(attributesTopic, false)
	clear(b.index)
	b.groups = b.groups[:0]
}

func (b *batcher) emit(topic string, telemetry bool) {
	open, closeCh := byte('['), byte(']')
	if !telemetry {
		open, closeCh = '{', '}'
	}
	var msg []byte
	values := 0
	// left is what the rest of this topic's messages need at most, so that a small
	// message (one frame at low rates) does not get a maxSize buffer.
	left := 2
	for gi := range b.groups {
		g := &b.groups[gi]
		frags := g.tel
		if !telemetry {
			frags = g.attr
		}
		if len(frags) > 0 {
			left += len(g.name) + 4
			for _, f := range frags {
				left += len(f) + 1
			}
		}
	}
	finish := func() {
		if msg != nil {
			msg = append(msg, closeCh, '}')
			b.out = append(b.out, message{topic: topic, payload: msg, values: values})
			msg, values = nil, 0
		}
	}
	for gi := range b.groups {
		g := &b.groups[gi]
		frags, counts := g.tel, g.telN
		if !telemetry {
			frags, counts = g.attr, g.attrN
		}
		if len(frags) == 0 {
			continue
		}
		name := g.name
		inDevice := false
		for fi, f := range frags {
			// room for: ,"name":[ f ]}
			need := len(f) + len(name) + 6
			if msg != nil && len(msg)+need > b.maxSize {
				finish()
				inDevice = false
			}
			if msg == nil {
				msg = make([]byte, 0, min(b.maxSize, 64<<10, left)+len(f)+len(name)+8)
				msg = append(msg, '{')
			}
			left -= len(f) + 1
			if !inDevice {
				if len(msg) > 1 {
					msg = append(msg, closeCh, ',')
				}
				msg = append(msg, name...)
				msg = append(msg, ':', open)
				inDevice = true
			} else {
				msg = append(msg, ',')
			}
			msg = append(msg, f...)
			values += counts[fi]
		}
	}
	finish()
}
