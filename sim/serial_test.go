package sim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startSim runs RunSerial in the background and stops it when the test ends,
// checking that it returned nil and removed its links.
func startSim(t *testing.T, o SerialOptions) *SerialStats {
	t.Helper()
	if o.Stats == nil {
		o.Stats = &SerialStats{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunSerial(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunSerial: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("RunSerial did not stop within 5 s")
		}
		for _, l := range links(o) {
			if _, err := os.Lstat(l); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("link %s still there after stop (err %v)", l, err)
			}
		}
	})
	// Wait for the links: RunSerial creates them before it sends anything.
	deadline := time.Now().Add(5 * time.Second)
	for _, l := range links(o) {
		for {
			if _, err := os.Stat(l); err == nil {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("RunSerial returned before linking %s: %v", l, err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("link %s not created", l)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return o.Stats
}

func links(o SerialOptions) []string {
	if o.Count <= 1 {
		return []string{o.Link}
	}
	var l []string
	for i := range o.Count {
		l = append(l, o.Link+strconv.Itoa(i))
	}
	return l
}

// port opens the gateway end of a simulated device the way a program would
// open a serial port, without touching its termios: raw mode is the
// simulator's job.
type port struct {
	t *testing.T
	f *os.File
	r *bufio.Reader
}

func openPort(t *testing.T, path string) *port {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return &port{t: t, f: f, r: bufio.NewReader(f)}
}

// frame reads up to and including the next \n.
func (p *port) frame() string {
	p.t.Helper()
	_ = p.f.SetReadDeadline(time.Now().Add(3 * time.Second))
	s, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("read frame: %v (got %q)", err, s)
	}
	return s
}

func (p *port) write(b []byte) {
	p.t.Helper()
	if _, err := p.f.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func writeScenario(t *testing.T, s string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scenario.json")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaultFrames(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyS")
	stats := startSim(t, SerialOptions{Link: link, Rate: 200})
	p := openPort(t, link)
	re := regexp.MustCompile(`^(\d+)\r2430947595\n$`)
	prev := -1
	for range 20 {
		f := p.frame()
		m := re.FindStringSubmatch(f)
		if m == nil {
			t.Fatalf("frame %q does not match %q", f, re)
		}
		h, _ := strconv.Atoi(m[1])
		if h < 30 || h > 70 {
			t.Errorf("humidity %d outside 30..70", h)
		}
		// The random walk moves at most 2 % of the range (0.8) per frame.
		if prev >= 0 && (h-prev > 1 || prev-h > 1) {
			t.Errorf("humidity jumped from %d to %d", prev, h)
		}
		prev = h
	}
	// The counter follows the write: the 20th frame may be read just before it.
	deadline := time.Now().Add(2 * time.Second)
	for stats.FramesSent.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := stats.FramesSent.Load(); n < 20 {
		t.Errorf("FramesSent = %d, want >= 20", n)
	}
}

func TestRate(t *testing.T) {
	for _, rate := range []float64{10, 50} {
		t.Run(strconv.FormatFloat(rate, 'f', -1, 64), func(t *testing.T) {
			link := filepath.Join(t.TempDir(), "tty")
			sc := writeScenario(t, `{"frames":["{{seq}} {{ts_us}}\n"]}`)
			startSim(t, SerialOptions{Link: link, Rate: rate, Scenario: sc})
			p := openPort(t, link)
			parse := func(f string) (seq, ts int64) {
				var err error
				fs := strings.Fields(f)
				if len(fs) != 2 {
					t.Fatalf("frame %q: want \"seq ts_us\"", f)
				}
				if seq, err = strconv.ParseInt(fs[0], 10, 64); err != nil {
					t.Fatal(err)
				}
				if ts, err = strconv.ParseInt(fs[1], 10, 64); err != nil {
					t.Fatal(err)
				}
				return seq, ts
			}
			seq0, ts0 := parse(p.frame())
			start := time.Now()
			var seq, ts int64
			for time.Since(start) < 1500*time.Millisecond {
				seq, ts = parse(p.frame())
			}
			wall := time.Since(start)
			// Frames carry the sender's clock: the rate between the first and
			// the last one is what the simulator did, free of reader jitter.
			sent := float64(seq-seq0) / (float64(ts-ts0) / 1e6)
			if sent < rate*0.8 || sent > rate*1.2 {
				t.Errorf("sent %.1f frames/s (by ts_us), want %v ±20 %%", sent, rate)
			}
			// The reader's view also carries the scheduling delays of a loaded
			// machine at both ends of the window: it only guards against gross
			// errors (a rate off by half), the sender's clock above is the measure.
			got := float64(seq-seq0) / wall.Seconds()
			if got < rate*0.6 || got > rate*1.4 {
				t.Errorf("received %.1f frames/s over %v, want %v ±40 %%", got, wall, rate)
			}
		})
	}
}

func TestRPCAndAttributeLines(t *testing.T) {
	link := filepath.Join(t.TempDir(), "tty")
	// One frame at the start, the next one in 1000 s: the replies are alone.
	stats := startSim(t, SerialOptions{Link: link, Rate: 0.001})
	p := openPort(t, link)
	if f := p.frame(); !strings.HasSuffix(f, "\r2430947595\n") {
		t.Fatalf("first frame %q", f)
	}
	tests := []struct {
		name  string
		write []byte
		reply string // "" = no reply
	}{
		{"setValue int 25", []byte{0x19}, "ok:19\r\n"},
		{"setValue int 10 is a lone LF", []byte{0x0a}, "ok:0a\r\n"},
		{"getValue string", []byte("abc"), "ok:616263\r\n"},
		// Control bytes a cooked tty would eat or translate: ^C (ISIG), ^D,
		// DEL (ICANON), XON/XOFF (IXON), CR (ICRNL), LF.
		{"raw control bytes", []byte{0x03, 0x04, 0x7f, 0x11, 0x13, 0x0d, 0x00, 0xff, 0x0a}, "ok:03047f11130d00ff0a\r\n"},
		{"attribute update line", []byte("value = 25\n"), ""},
		{"two attribute lines", []byte("value = 1\nvalue = 2\n"), ""},
	}
	lines := int64(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.t = t
			p.write(tt.write)
			if tt.reply == "" {
				lines += int64(bytes.Count(tt.write, []byte("\n")))
				deadline := time.Now().Add(2 * time.Second)
				for stats.Lines.Load() != lines && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				if got := stats.Lines.Load(); got != lines {
					t.Errorf("Lines = %d, want %d", got, lines)
				}
				return
			}
			if got := p.frame(); got != tt.reply {
				t.Errorf("reply = %q, want %q", got, tt.reply)
			}
		})
	}
	// A line gets no reply: the next thing on the wire is the next RPC's.
	p.t = t
	p.write([]byte{0x01})
	if got := p.frame(); got != "ok:01\r\n" {
		t.Errorf("reply after lines = %q, want %q", got, "ok:01\r\n")
	}
	if got := stats.RPCs.Load(); got != 5 {
		t.Errorf("RPCs = %d, want 5", got)
	}
}

func TestScenarioReply(t *testing.T) {
	link := filepath.Join(t.TempDir(), "tty")
	sc := writeScenario(t, `{"frames":["A{{seq}}\n","B{{seq}}\n"],"reply":"R{{hex}}|{{serial}}\n"}`)
	startSim(t, SerialOptions{Link: link, Rate: 0.001, Scenario: sc, Serial: "dev"})
	p := openPort(t, link)
	if got := p.frame(); got != "A1\n" {
		t.Fatalf("first frame = %q, want %q", got, "A1\n")
	}
	p.write([]byte{0xbe, 0xef})
	if got := p.frame(); got != "Rbeef|dev\n" {
		t.Errorf("reply = %q", got)
	}
}

func TestScenarioRoundRobin(t *testing.T) {
	link := filepath.Join(t.TempDir(), "tty")
	sc := writeScenario(t, `{"frames":["A{{seq}}\n","B{{seq}}\n"],"reply":""}`)
	startSim(t, SerialOptions{Link: link, Scenario: sc})
	p := openPort(t, link)
	// Rate 0 fills the pty buffer before the port is opened; frames stay whole
	// and in order.
	first := p.frame()
	n, err := strconv.Atoi(first[1 : len(first)-1])
	if err != nil {
		t.Fatalf("frame %q", first)
	}
	for i := n + 1; i < n+50; i++ {
		want := "AB"[(i-1)%2:(i-1)%2+1] + strconv.Itoa(i) + "\n"
		if got := p.frame(); got != want {
			t.Fatalf("frame = %q, want %q", got, want)
		}
	}
}

func TestCount(t *testing.T) {
	link := filepath.Join(t.TempDir(), "dev")
	stats := startSim(t, SerialOptions{Link: link, Count: 3, Rate: 100})
	for i := range 3 {
		p := openPort(t, link+strconv.Itoa(i))
		want := "\r" + strconv.Itoa(2430947595+i) + "\n"
		if f := p.frame(); !strings.HasSuffix(f, want) {
			t.Errorf("device %d frame %q, want suffix %q", i, f, want)
		}
		p.write([]byte{byte(i)})
		for {
			f := p.frame()
			if strings.HasPrefix(f, "ok:") {
				if want := "ok:0" + strconv.Itoa(i) + "\r\n"; f != want {
					t.Errorf("device %d reply %q, want %q", i, f, want)
				}
				break
			}
		}
	}
	if got := stats.RPCs.Load(); got != 3 {
		t.Errorf("RPCs = %d, want 3", got)
	}
}

func TestLinkPlacement(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale")
	if err := os.Symlink("/dev/pts/does-not-exist", stale); err != nil {
		t.Fatal(err)
	}
	startSim(t, SerialOptions{Link: stale, Rate: 10})
	p := openPort(t, stale)
	if f := p.frame(); !strings.HasSuffix(f, "\n") {
		t.Errorf("frame %q", f)
	}

	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := RunSerial(context.Background(), SerialOptions{Link: regular})
	if err == nil || !strings.Contains(err.Error(), "is not a symlink") {
		t.Errorf("RunSerial over a regular file: err = %v, want 'is not a symlink'", err)
	}
	if _, err := os.Stat(regular); err != nil {
		t.Errorf("regular file was touched: %v", err)
	}
}

func TestOptionErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeScenario(t, `{"frames":["{{nope}}\n"]}`)
	tests := []struct {
		name string
		o    SerialOptions
		want string
	}{
		{"no link", SerialOptions{}, "link path is empty"},
		{"negative rate", SerialOptions{Link: filepath.Join(dir, "a"), Rate: -1}, "expected a number >= 0"},
		{"negative count", SerialOptions{Link: filepath.Join(dir, "b"), Count: -2}, "expected >= 1"},
		{"missing scenario", SerialOptions{Link: filepath.Join(dir, "c"), Scenario: filepath.Join(dir, "none.json")}, "no such file"},
		{"bad placeholder", SerialOptions{Link: filepath.Join(dir, "d"), Scenario: bad}, "unknown placeholder {{nope}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := RunSerial(context.Background(), tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestTemplate(t *testing.T) {
	now := time.UnixMicro(1700000000123456)
	tests := []struct {
		text, want string
	}{
		{"plain\r\n", "plain\r\n"},
		{"{{seq}}|{{serial}}|{{device}}", "7|2430947597|2"},
		{"{{ts}} {{ts_us}}", "1700000000123 1700000000123456"},
		{"{{hex}}", "00ff0a"},
		{"{{rand 5 5}}", "5"},
		{"{{rand 1.50 1.50}}", "1.50"},
		{"{{walk 3.0 3.0}}", "3.0"},
		{"{{ seq }}", "7"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			tm, err := compileTemplate(tt.text, 0)
			if err != nil {
				t.Fatal(err)
			}
			c := &frameCtx{seq: 7, serial: "2430947597", index: 2, rng: rand.New(rand.NewPCG(1, 2)),
				walks: make([]float64, tm.walks), now: func() time.Time { return now }, input: []byte{0, 0xff, '\n'}}
			for i := range c.walks {
				c.walks[i] = -1 // outside the range: clamped
			}
			if got := string(tm.render(nil, c)); got != tt.want {
				t.Errorf("render = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTemplateRandBounds(t *testing.T) {
	tm, err := compileTemplate("{{rand 10.0 30.0}} {{walk 30 70}}", 0)
	if err != nil {
		t.Fatal(err)
	}
	c := &frameCtx{rng: rand.New(rand.NewPCG(3, 4)), walks: []float64{nan()}, now: time.Now}
	re := regexp.MustCompile(`^(\d+\.\d) (\d+)$`)
	for range 1000 {
		out := string(tm.render(nil, c))
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("render = %q, want %q", out, re)
		}
		r, _ := strconv.ParseFloat(m[1], 64)
		w, _ := strconv.Atoi(m[2])
		if r < 10 || r > 30 || w < 30 || w > 70 {
			t.Fatalf("render = %q: out of bounds", out)
		}
	}
}

func nan() float64 {
	var z float64
	return z / z
}

func TestTemplateErrors(t *testing.T) {
	tests := map[string]string{
		"{{seq":         "unclosed",
		"{{}}":          "empty",
		"{{rand 1}}":    "needs two bounds",
		"{{rand a 2}}":  "lower bound",
		"{{walk 1 b}}":  "upper bound",
		"{{rand 5 1}}":  "below lower bound",
		"{{seq 1}}":     "takes no arguments",
		"{{humidity}}":  "unknown placeholder",
		"ok {{hex}} {{": "unclosed",
	}
	for text, want := range tests {
		_, err := compileTemplate(text, 0)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("compileTemplate(%q) err = %v, want %q", text, err, want)
		}
	}
}

func TestTextLines(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"value = 25\n", true},
		{"value = 25\r\n", true},
		{"a\nb\n", true},
		{"héllo\n", true},
		{"\n", false},
		{"a\n\n", false},
		{"abc", false},
		{"a\x00\n", false},
		{"\xff\n", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := textLines([]byte(tt.in)); got != tt.want {
			t.Errorf("textLines(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// BenchmarkSerialThroughput measures how many default frames per second one
// simulated device pushes through its pty to a reader (rate 0).
func BenchmarkSerialThroughput(b *testing.B) {
	link := filepath.Join(b.TempDir(), "tty")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunSerial(ctx, SerialOptions{Link: link}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	for {
		if _, err := os.Stat(link); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	f, err := os.OpenFile(link, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.ReadSlice('\n'); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func BenchmarkRenderDefaultFrame(b *testing.B) {
	tm, err := compileTemplate(DefaultFrame, 0)
	if err != nil {
		b.Fatal(err)
	}
	c := &frameCtx{serial: DefaultSerial, rng: rand.New(rand.NewPCG(1, 2)), walks: []float64{nan()}, now: time.Now}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = tm.render(buf[:0], c)
	}
}

// A device at a fixed rate that nobody reads discards what waited more than
// staleAfter: a gateway that opens the port late gets fresh frames.
func TestStaleBacklogDropped(t *testing.T) {
	link := filepath.Join(t.TempDir(), "tty")
	sc := writeScenario(t, `{"frames":["{{seq}}\n"]}`)
	stats := startSim(t, SerialOptions{Link: link, Rate: 200, Scenario: sc})
	time.Sleep(staleAfter + 700*time.Millisecond)
	p := openPort(t, link)
	// Frames 1..~400 were sent before the port was opened; those older than
	// staleAfter are gone. The first one read may be cut by the discard.
	p.frame()
	seq, err := strconv.Atoi(strings.TrimSuffix(p.frame(), "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if seq < 300 {
		t.Errorf("first whole frame read has seq %d: the stale backlog was not discarded", seq)
	}
	if stats.BytesDropped.Load() == 0 {
		t.Error("BytesDropped = 0")
	}
	// From then on nothing is lost while the port is read.
	for i := seq + 1; i < seq+100; i++ {
		if got := p.frame(); got != strconv.Itoa(i)+"\n" {
			t.Fatalf("frame %q, want %d", got, i)
		}
	}
}
