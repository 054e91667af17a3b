package serial

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// chunk is bytes pushed at a time offset (ms) from t0.
type chunk struct {
	at   int
	data string
}

// runFramer pushes chunks and collects frames, asking for frames after each push and
// at the given extra times.
func runFramer(cfg framing, chunks []chunk, pollAt ...int) (frames []string, dropped int) {
	t0 := time.Unix(1000, 0)
	f := newFramer(cfg)
	drain := func(now time.Time) {
		for {
			fr, ok := f.next(now)
			if !ok {
				break
			}
			frames = append(frames, string(fr))
		}
		dropped += f.takeDropped()
	}
	for _, c := range chunks {
		now := t0.Add(time.Duration(c.at) * time.Millisecond)
		f.push([]byte(c.data), now)
		drain(now)
	}
	for _, p := range pollAt {
		drain(t0.Add(time.Duration(p) * time.Millisecond))
	}
	return frames, dropped
}

func TestFramer(t *testing.T) {
	nl := framing{mode: modeDelimiter, delim: []byte("\n"), maxSize: 16}
	crlf := framing{mode: modeDelimiter, delim: []byte("\r\n"), maxSize: 16}
	tests := []struct {
		name    string
		cfg     framing
		chunks  []chunk
		poll    []int
		want    []string
		dropped int
	}{
		{"delimiter: frames include it; several per block", nl,
			[]chunk{{0, "48\r2430947595\na\nb"}}, nil, []string{"48\r2430947595\n", "a\n"}, 0},
		{"fix: a partial frame waits for its delimiter, however long", nl,
			[]chunk{{0, "12"}, {5000, "3"}, {9000, "\n4"}}, []int{60000}, []string{"123\n"}, 0},
		{"multi-byte delimiter split across reads", crlf,
			[]chunk{{0, "ab\r"}, {1, "\ncd\r"}, {2, "x\r\n"}}, nil, []string{"ab\r\n", "cd\rx\r\n"}, 0},
		{"empty frames", nl, []chunk{{0, "\n\n"}}, nil, []string{"\n", "\n"}, 0},
		{"over-long frame dropped, framing resyncs at the next delimiter", nl,
			[]chunk{{0, "0123456789"}, {1, "0123456789"}, {2, "tail\nok\n"}}, nil, []string{"ok\n"}, 1},
		{"over-long frame in one block dropped", nl,
			[]chunk{{0, "01234567890123456789\nok\n"}}, nil, []string{"ok\n"}, 1},
		{"frame of exactly maxSize kept", nl,
			[]chunk{{0, "012345678901234\n"}}, nil, []string{"012345678901234\n"}, 0},
		{"frameLength", framing{mode: modeLength, length: 3, maxSize: 16},
			[]chunk{{0, "abcd"}, {1, "ef"}, {2, "ghij"}}, nil, []string{"abc", "def", "ghi"}, 0},
		{"frameGapMs: silence ends a frame", framing{mode: modeGap, period: 10 * time.Millisecond, maxSize: 16},
			[]chunk{{0, "ab"}, {5, "cd"}, {20, "ef"}, {25, "g"}}, []int{34, 35}, []string{"abcd", "efg"}, 0},
		{"frameGapMs: bytes after the gap start the next frame even before a poll", framing{mode: modeGap, period: 10 * time.Millisecond, maxSize: 16},
			[]chunk{{0, "ab"}, {50, "cd"}}, []int{60}, []string{"ab", "cd"}, 0},
		{"frameTimeoutMs: a frame ends a fixed time after its first byte", framing{mode: modeTimeout, period: 10 * time.Millisecond, maxSize: 16},
			[]chunk{{0, "ab"}, {5, "cd"}, {9, "e"}, {11, "fg"}}, []int{21}, []string{"abcde", "fg"}, 0},
		{"frameGapMs: over-long frame dropped until its gap", framing{mode: modeGap, period: 10 * time.Millisecond, maxSize: 4},
			[]chunk{{0, "abc"}, {2, "def"}, {4, "ghi"}, {30, "ok"}}, []int{50}, []string{"ok"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped := runFramer(tt.cfg, tt.chunks, tt.poll...)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("frames %q, want %q", got, tt.want)
			}
			if dropped != tt.dropped {
				t.Errorf("dropped %d, want %d", dropped, tt.dropped)
			}
		})
	}
}

func TestFramerDeadlineAndFlush(t *testing.T) {
	t0 := time.Unix(0, 0)
	f := newFramer(framing{mode: modeGap, period: 10 * time.Millisecond})
	if _, ok := f.deadline(); ok {
		t.Fatal("deadline without bytes")
	}
	f.push([]byte("ab"), t0)
	if dl, ok := f.deadline(); !ok || !dl.Equal(t0.Add(10*time.Millisecond)) {
		t.Fatalf("deadline %v %v", dl, ok)
	}
	if fr, ok := f.flush(); !ok || string(fr) != "ab" {
		t.Fatalf("flush %q %v", fr, ok)
	}
	d := newFramer(framing{mode: modeDelimiter, delim: []byte("\n")})
	d.push([]byte("x\nyz"), t0)
	if fr, _ := d.next(t0); string(fr) != "x\n" {
		t.Fatalf("next %q", fr)
	}
	if d.buffered() != 2 {
		t.Fatalf("buffered %d", d.buffered())
	}
	if fr, ok := d.flush(); !ok || string(fr) != "yz" {
		t.Fatalf("flush %q", fr)
	}
}

// The buffer does not grow while frames are consumed: it is compacted and reused.
func TestFramerReusesBuffer(t *testing.T) {
	f := newFramer(framing{mode: modeDelimiter, delim: []byte("\n")})
	block := bytes.Repeat([]byte("0123456789abcdef\n"), 200)
	for i := 0; i < 1000; i++ {
		f.push(block[:1000+i%7], time.Time{})
		for {
			if _, ok := f.next(time.Time{}); !ok {
				break
			}
		}
	}
	if cap(f.buf) > 8192 {
		t.Fatalf("buffer grew to %d", cap(f.buf))
	}
}

// FuzzFramer pushes data in pieces and checks that, without over-long frames, the
// frames plus what stays buffered are exactly the input, every frame ends with the
// delimiter and holds no earlier one; with a small maxSize no frame exceeds it.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("48\r2430947595\n"), []byte("\n"), uint8(3), uint16(1000))
	f.Add([]byte("ab\r\ncd\r\r\n\r\n"), []byte("\r\n"), uint8(1), uint16(4))
	f.Add([]byte("xxxxxxxxxxxxxxxxxxxxENDyyEND"), []byte("END"), uint8(5), uint16(8))
	f.Fuzz(func(t *testing.T, data, delim []byte, step uint8, max uint16) {
		if len(delim) == 0 || len(delim) > 8 || max == 0 {
			return
		}
		fr := newFramer(framing{mode: modeDelimiter, delim: delim, maxSize: int(max)})
		var frames [][]byte
		st := int(step%16) + 1
		for i := 0; i < len(data); i += st {
			fr.push(data[i:min(i+st, len(data))], time.Time{})
			for {
				b, ok := fr.next(time.Time{})
				if !ok {
					break
				}
				frames = append(frames, bytes.Clone(b))
			}
		}
		dropped := fr.takeDropped()
		for _, b := range frames {
			if len(b) > int(max) {
				t.Fatalf("frame of %d bytes > max %d", len(b), max)
			}
			if !bytes.HasSuffix(b, delim) || bytes.Index(b, delim) != len(b)-len(delim) {
				t.Fatalf("frame %q does not end at its first delimiter %q", b, delim)
			}
		}
		if dropped == 0 && !fr.discarding {
			got := append(bytes.Join(frames, nil), fr.buf[fr.r:]...)
			if !bytes.Equal(got, data) {
				t.Fatalf("frames+buffer %q != input %q", got, data)
			}
		}
	})
}

// FuzzUplink runs any frame through the guide's compiled plan: it must not panic and
// must give valid JSON.
func FuzzUplink(f *testing.F) {
	f.Add([]byte("48\r2430947595\n"))
	f.Add([]byte("\r\n"))
	f.Add([]byte("\xff\xfe\r\xc3\x28\n"))
	f.Add([]byte("1e999\r-0\n"))
	c, err := newUplink([]byte(`{"name":"D","telemetry":[{"type":"float","key":"humidity","untilDelimiter":"\r"},
		{"type":"int","key":"i","fromDelimiter":"\r","untilDelimiter":"\n"},{"type":"json","key":"j","fromByte":1},
		{"type":"bool","key":"b","fromByte":-3,"toByte":-1},{"key":"h","toByte":4}],
		"attributes":[{"key":"SerialNumber","type":"string","fromByte":4,"toByte":-1}]}`), slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		d := c.ConvertAt(frame, 1)
		out := AppendConvertedJSON(nil, d)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %s for frame %q", out, frame)
		}
		for _, e := range d.Telemetry {
			if len(e.Values) == 0 {
				t.Fatal("empty telemetry entry")
			}
		}
	})
}
