package sim

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// frameCtx is what a template sees when it is rendered: the state of one
// simulated device.
type frameCtx struct {
	seq    uint64 // frames sent by this device so far, counting this one (from 1)
	serial string // the device's serial number
	index  int    // the device's index, 0..Count-1
	rng    *rand.Rand
	walks  []float64 // current position of each {{walk}} placeholder
	now    func() time.Time
	input  []byte // for reply templates: the bytes the gateway wrote
}

// part is one piece of a compiled template: literal text or a placeholder.
type part struct {
	lit  string
	kind partKind
	a, b float64 // bounds for rand and walk
	dec  int     // decimals printed for rand and walk
	slot int     // index into frameCtx.walks for walk
}

type partKind int

const (
	partLit partKind = iota
	partSeq
	partSerial
	partDevice
	partRand
	partWalk
	partTS
	partTSUs
	partHex
)

// template is a frame or reply pattern compiled once, so that rendering a frame
// allocates nothing but the output.
type template struct {
	parts []part
	walks int // number of walk placeholders (each keeps its own position)
}

// compileTemplate parses text with {{placeholder}} fields. walkBase numbers the
// template's walk slots after those of earlier templates of the same device.
func compileTemplate(text string, walkBase int) (template, error) {
	var t template
	rest := text
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return template{}, fmt.Errorf("template %q: unclosed {{", text)
		}
		field := strings.Fields(rest[i+2 : i+j])
		rest = rest[i+j+2:]
		if len(field) == 0 {
			return template{}, fmt.Errorf("template %q: empty {{}}", text)
		}
		p, err := compileField(field)
		if err != nil {
			return template{}, fmt.Errorf("template %q: %w", text, err)
		}
		if p.kind == partWalk {
			p.slot = walkBase + t.walks
			t.walks++
		}
		t.parts = append(t.parts, p)
	}
	return t, nil
}

func compileField(f []string) (part, error) {
	simple := map[string]partKind{
		"seq": partSeq, "serial": partSerial, "device": partDevice,
		"ts": partTS, "ts_us": partTSUs, "hex": partHex,
	}
	if k, ok := simple[f[0]]; ok {
		if len(f) != 1 {
			return part{}, fmt.Errorf("{{%s}} takes no arguments", f[0])
		}
		return part{kind: k}, nil
	}
	if f[0] != "rand" && f[0] != "walk" {
		return part{}, fmt.Errorf("unknown placeholder {{%s}} (expected seq, serial, device, ts, ts_us, hex, rand A B or walk A B)", f[0])
	}
	if len(f) != 3 {
		return part{}, fmt.Errorf("{{%s}} needs two bounds, got %d arguments", f[0], len(f)-1)
	}
	a, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return part{}, fmt.Errorf("{{%s}} lower bound: %w", f[0], err)
	}
	b, err := strconv.ParseFloat(f[2], 64)
	if err != nil {
		return part{}, fmt.Errorf("{{%s}} upper bound: %w", f[0], err)
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) || math.IsNaN(a) || math.IsNaN(b) || math.IsInf(b-a, 0) {
		return part{}, fmt.Errorf("{{%s %s %s}}: bounds must be finite numbers", f[0], f[1], f[2])
	}
	if b < a {
		return part{}, fmt.Errorf("{{%s %s %s}}: upper bound below lower bound", f[0], f[1], f[2])
	}
	kind := partRand
	if f[0] == "walk" {
		kind = partWalk
	}
	// The bounds as written decide the output precision: "30 70" prints integers,
	// "30.0 70.0" one decimal.
	dec := max(decimals(f[1]), decimals(f[2]))
	if dec > 9 {
		return part{}, fmt.Errorf("{{%s %s %s}}: at most 9 decimals", f[0], f[1], f[2])
	}
	return part{kind: kind, a: a, b: b, dec: dec}, nil
}

func decimals(s string) int {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

// render appends the template's output for c to dst.
func (t *template) render(dst []byte, c *frameCtx) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		switch p.kind {
		case partLit:
			dst = append(dst, p.lit...)
		case partSeq:
			dst = strconv.AppendUint(dst, c.seq, 10)
		case partSerial:
			dst = append(dst, c.serial...)
		case partDevice:
			dst = strconv.AppendInt(dst, int64(c.index), 10)
		case partRand:
			v := p.a + c.rng.Float64()*(p.b-p.a)
			dst = strconv.AppendFloat(dst, round(v, p.dec), 'f', p.dec, 64)
		case partWalk:
			dst = strconv.AppendFloat(dst, round(c.step(p), p.dec), 'f', p.dec, 64)
		case partTS:
			dst = strconv.AppendInt(dst, c.now().UnixMilli(), 10)
		case partTSUs:
			dst = strconv.AppendInt(dst, c.now().UnixMicro(), 10)
		case partHex:
			dst = hex.AppendEncode(dst, c.input)
		}
	}
	return dst
}

// step moves a random walk by at most 2 % of its range and keeps it inside it.
func (c *frameCtx) step(p *part) float64 {
	v := c.walks[p.slot]
	if math.IsNaN(v) {
		v = p.a + c.rng.Float64()*(p.b-p.a)
	} else {
		v += (c.rng.Float64()*2 - 1) * (p.b - p.a) * 0.02
	}
	v = min(max(v, p.a), p.b)
	c.walks[p.slot] = v
	return v
}

func round(v float64, dec int) float64 {
	m := math.Pow10(dec)
	return math.Round(v*m) / m
}
