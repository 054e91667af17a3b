// Package sim simulates the devices that iotgw talks to, so that the whole
// gateway can be seen working on a laptop with no hardware: RunSerial puts a
// serial device on a pseudo-terminal.
//
// The simulated serial device speaks the protocol of the ThingsBoard guide's
// serial connector: it sends frames such as "48\r2430947595\n" (humidity, \r,
// serial number, \n), logs the text lines the gateway writes for attribute
// updates ("value = 25\n"), and answers every other write, which it takes for
// an RPC, with "ok:<hex of the bytes>\r\n".
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// DefaultFrame is the frame a simulated device sends when no scenario says
// otherwise: the guide's humidity (a random walk between 30 and 70), \r, the
// device's serial number, \n.
const DefaultFrame = "{{walk 30 70}}\r{{serial}}\n"

// DefaultReply answers an RPC write: "ok:", the written bytes in lower-case hex,
// then "\r\n". The guide's setValue RPC (responseUntilDelimiter "\r") reads it
// as the string "ok:<hex>".
const DefaultReply = "ok:{{hex}}\r\n"

// DefaultSerial is the serial number of the first simulated device, from the
// guide; device i gets DefaultSerial+i.
const DefaultSerial = "2430947595"

// rpcGap is how long the device waits for more bytes before it takes a write
// that is not a complete text line for an RPC. Writes of one RPC arrive in one
// piece in practice; the gap only guards against a write split by the kernel.
const rpcGap = 5 * time.Millisecond

// maxPending bounds the bytes kept while a write is being collected.
const maxPending = 64 << 10

// staleAfter is how long frames may wait in the pty with nobody reading them
// before a device sending at a fixed rate discards them, as a UART overrun
// would: a gateway that opens the port later gets fresh frames, not minutes
// of old ones stamped with the time it reads them.
const staleAfter = 2 * time.Second

// SerialOptions configures RunSerial.
type SerialOptions struct {
	// Link is where the gateway end of the pseudo-terminal is symlinked (the
	// "port" of the gateway's device config). With Count > 1 device i is at
	// Link followed by i (Link0, Link1, ...).
	Link string
	// Count is the number of simulated devices, each on its own pty (default 1).
	Count int
	// Rate is the number of frames per second each device sends; 0 sends as
	// fast as the reader takes them.
	Rate float64
	// Scenario is an optional JSON file with other frames and replies (see Scenario).
	Scenario string
	// Serial is the first device's serial number (default DefaultSerial). When
	// it is a number, device i gets Serial+i, else Serial followed by "-i".
	Serial string
	// Logger receives the device's log lines; nil discards them.
	Logger *slog.Logger
	// Stats, when not nil, is updated as the devices work.
	Stats *SerialStats
}

// SerialStats counts what the simulated devices did. All fields are safe to
// read while RunSerial runs.
type SerialStats struct {
	// FramesSent is the number of frames written to the gateway.
	FramesSent atomic.Int64
	// BytesSent counts frame and reply bytes written to the gateway.
	BytesSent atomic.Int64
	// BytesReceived counts bytes the gateway wrote.
	BytesReceived atomic.Int64
	// Lines is the number of text lines (attribute updates) received.
	Lines atomic.Int64
	// RPCs is the number of writes taken for an RPC and answered (or not, when
	// the scenario's reply is empty).
	RPCs atomic.Int64
	// BytesDropped counts frame bytes discarded because nobody read them for
	// staleAfter (only with a rate > 0).
	BytesDropped atomic.Int64
}

// Scenario is the JSON file of SerialOptions.Scenario:
//
//	{"frames": ["{{walk 30 70}}\r{{serial}}\n", "T={{rand 10.0 30.0}};seq={{seq}};ts={{ts_us}}\n"],
//	 "reply": "ok:{{hex}}\r\n"}
//
// Frames are sent in turn, round robin. Placeholders: {{seq}} the frame number
// of this device (from 1), {{serial}} its serial number, {{device}} its index,
// {{rand A B}} a uniform random number in [A,B], {{walk A B}} a random walk in
// [A,B] (each field keeps its own position), {{ts}} Unix time in ms, {{ts_us}}
// Unix time in µs (the benchmark's send timestamp). A and B set the printed
// precision: "30 70" prints integers, "30.0 70.0" one decimal. The reply
// template may also use {{hex}}, the received bytes in hex; an empty reply
// makes the device answer no RPC.
type Scenario struct {
	Frames []string `json:"frames"`
	Reply  *string  `json:"reply"`
}

// LoadScenario reads and checks a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	var s Scenario
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	if _, _, err := s.compile(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return &s, nil
}

// compile turns the scenario's text into templates, filling in the defaults.
func (s *Scenario) compile() (frames []template, reply template, err error) {
	texts := s.Frames
	if len(texts) == 0 {
		texts = []string{DefaultFrame}
	}
	walks := 0
	for i, text := range texts {
		if text == "" {
			return nil, template{}, fmt.Errorf("frames[%d]: empty frame", i)
		}
		t, err := compileTemplate(text, walks)
		if err != nil {
			return nil, template{}, fmt.Errorf("frames[%d]: %w", i, err)
		}
		walks += t.walks
		frames = append(frames, t)
	}
	replyText := DefaultReply
	if s.Reply != nil {
		replyText = *s.Reply
	}
	if reply, err = compileTemplate(replyText, 0); err != nil {
		return nil, template{}, fmt.Errorf("reply: %w", err)
	}
	return frames, reply, nil
}

// device is one simulated serial device on its own pty.
type device struct {
	index  int
	serial string
	link   string
	master *os.File // the device's end, non-blocking so that Close stops readers
	slave  *os.File // the gateway's end, held open so the master never sees a hangup
	slavFD int      // slave's descriptor, for queue ioctls
	log    *slog.Logger
	stats  *SerialStats

	wmu sync.Mutex // one frame or reply at a time on the wire; guards the fields below
	// lastQueued is the slave's input queue at the last check; progressAt is
	// when the reader was last seen taking from it.
	lastQueued int
	progressAt time.Time
}

// RunSerial creates o.Count simulated serial devices, links the gateway end of
// each pty at o.Link (or o.Link0..o.LinkN-1), sends frames until ctx is done,
// then removes the links and closes the ptys. It returns nil when stopped by
// ctx, or the first error that stopped a device.
func RunSerial(ctx context.Context, o SerialOptions) error {
	if o.Link == "" {
		return errors.New("sim serial: link path is empty")
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		return fmt.Errorf("sim serial: rate %v: expected a number >= 0", o.Rate)
	}
	if o.Count == 0 {
		o.Count = 1
	}
	if o.Count < 0 {
		return fmt.Errorf("sim serial: count %d: expected >= 1", o.Count)
	}
	if o.Serial == "" {
		o.Serial = DefaultSerial
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stats == nil {
		o.Stats = &SerialStats{}
	}
	sc := &Scenario{}
	if o.Scenario != "" {
		var err error
		if sc, err = LoadScenario(o.Scenario); err != nil {
			return fmt.Errorf("sim serial: %w", err)
		}
	}
	frames, reply, err := sc.compile()
	if err != nil {
		return fmt.Errorf("sim serial: %w", err)
	}

	var devs []*device
	defer func() {
		for _, d := range devs {
			d.close()
		}
	}()
	for i := range o.Count {
		link := o.Link
		if o.Count > 1 {
			link += strconv.Itoa(i)
		}
		d, err := openDevice(i, serialFor(o.Serial, i), link, o.Logger, o.Stats)
		if err != nil {
			return fmt.Errorf("sim serial: device %d: %w", i, err)
		}
		devs = append(devs, d)
		o.Logger.Info("simulated serial device ready", "link", link, "pty", d.slave.Name(), "serial", d.serial)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		if err != nil && ctx.Err() == nil {
			errOnce.Do(func() { firstErr = err })
			cancel()
		}
	}
	for _, d := range devs {
		wg.Add(2)
		go func() { defer wg.Done(); fail(d.writeFrames(ctx, frames, o.Rate)) }()
		go func() { defer wg.Done(); fail(d.readWrites(ctx, reply)) }()
	}
	<-ctx.Done()
	// Closing the non-blocking master ends the device's pending reads and writes.
	for _, d := range devs {
		_ = d.master.Close()
	}
	wg.Wait()
	return firstErr
}

func serialFor(base string, i int) string {
	if n, err := strconv.ParseUint(base, 10, 64); err == nil {
		return strconv.FormatUint(n+uint64(i), 10)
	}
	if i == 0 {
		return base
	}
	return base + "-" + strconv.Itoa(i)
}

// openDevice opens a pty in raw mode and links its gateway end at link.
func openDevice(index int, serial, link string, log *slog.Logger, stats *SerialStats) (*device, error) {
	master, tty, err := OpenPTY()
	if err != nil {
		return nil, err
	}
	d := &device{index: index, serial: serial, link: link, master: master, slave: tty,
		slavFD: int(tty.Fd()), log: log.With("link", link), stats: stats, progressAt: time.Now()}
	if err := placeLink(tty.Name(), link, log); err != nil {
		_ = master.Close()
		_ = tty.Close()
		return nil, err
	}
	return d, nil
}

// placeLink symlinks target at link, replacing a stale symlink left by a
// simulator that was killed, but never a file that is not a symlink.
func placeLink(target, link string, log *slog.Logger) error {
	if fi, err := os.Lstat(link); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("link %s exists and is not a symlink", link)
		}
		old, _ := os.Readlink(link)
		log.Warn("replacing existing symlink", "link", link, "old_target", old)
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("replace link %s: %w", link, err)
		}
	}
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	return nil
}

// close removes the link (if it still points at this device) and closes the pty.
func (d *device) close() {
	if target, err := os.Readlink(d.link); err == nil && target == d.slave.Name() {
		if err := os.Remove(d.link); err != nil {
			d.log.Warn("remove link", "err", err)
		}
	}
	_ = d.master.Close()
	_ = d.slave.Close()
}

// write writes all of b. A lossy write (frames at a fixed rate) first drops
// a stale backlog, and drops b too when the pty stays full with nobody
// reading; a reply is never dropped.
func (d *device) write(b []byte, lossy bool) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if lossy {
		d.dropStale()
	}
	for len(b) > 0 {
		// The deadline is set on every write: it is per file, shared with replies.
		deadline := time.Time{}
		if lossy {
			deadline = time.Now().Add(staleAfter)
		}
		_ = d.master.SetWriteDeadline(deadline)
		n, err := d.master.Write(b)
		d.stats.BytesSent.Add(int64(n))
		b = b[n:]
		if lossy && errors.Is(err, os.ErrDeadlineExceeded) {
			if d.dropStale() {
				return nil // the rest of b went with the backlog
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// dropStale discards what waits in the pty when the reader has made no
// progress for staleAfter, and reports whether it did. The reader makes
// progress when the slave's input queue empties or shrinks; a queue that only
// grows, or stays full (the kernel keeps the excess in its flip buffers), has
// nobody reading it. Called with wmu held, so nothing new is written meanwhile.
func (d *device) dropStale() bool {
	queued, err := unix.IoctlGetInt(d.slavFD, unix.TIOCINQ)
	if err != nil {
		return false
	}
	now := time.Now()
	if queued == 0 || queued < d.lastQueued {
		d.lastQueued, d.progressAt = queued, now
		return false
	}
	d.lastQueued = queued
	if now.Sub(d.progressAt) < staleAfter {
		return false
	}
	// TCIFLUSH empties the line discipline and the flip buffers behind it.
	if err := unix.IoctlSetInt(d.slavFD, unix.TCFLSH, unix.TCIFLUSH); err != nil {
		d.log.Warn("discard stale frames", "err", err)
		return false
	}
	d.lastQueued, d.progressAt = 0, now
	d.stats.BytesDropped.Add(int64(queued))
	d.log.Debug("nobody reads the port: discarded stale frames", "bytes", queued)
	return true
}

// writeFrames sends frames round robin at rate frames per second (0: as fast
// as the gateway reads) until ctx is done.
func (d *device) writeFrames(ctx context.Context, frames []template, rate float64) error {
	walks := 0
	for _, t := range frames {
		walks += t.walks
	}
	fc := d.frameCtx(1, walks)
	var (
		buf      []byte
		interval time.Duration
		timer    *time.Timer
	)
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
		timer = time.NewTimer(0)
		defer timer.Stop()
		<-timer.C
	}
	next := time.Now()
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return nil
		}
		fc.seq = uint64(i + 1)
		buf = frames[i%len(frames)].render(buf[:0], fc)
		if err := d.write(buf, rate > 0); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("device %s: write frame: %w", d.link, err)
		}
		d.stats.FramesSent.Add(1)
		if rate == 0 {
			continue
		}
		// An absolute schedule keeps the rate exact; after a long stall (nobody
		// reading, buffer full) it restarts instead of sending a burst.
		next = next.Add(interval)
		now := time.Now()
		if now.Sub(next) > time.Second {
			next = now
		}
		if wait := next.Sub(now); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
		}
	}
}

func (d *device) frameCtx(seed uint64, nwalks int) *frameCtx {
	walks := make([]float64, nwalks)
	for i := range walks {
		walks[i] = math.NaN()
	}
	return &frameCtx{
		serial: d.serial,
		index:  d.index,
		rng:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), seed<<32|uint64(d.index))),
		walks:  walks,
		now:    time.Now,
	}
}

// readWrites reads what the gateway writes: complete text lines are logged as
// attribute updates; anything else is an RPC and gets the reply template.
func (d *device) readWrites(ctx context.Context, reply template) error {
	fc := d.frameCtx(2, reply.walks)
	buf := make([]byte, 4096)
	var pending, out []byte
	for {
		n, err := d.master.Read(buf)
		if n > 0 {
			d.stats.BytesReceived.Add(int64(n))
			pending = append(pending, buf[:n]...)
			if textLines(pending) {
				d.lines(pending)
				pending = pending[:0]
			} else if len(pending) >= maxPending {
				out = d.rpc(pending, reply, fc, out)
				pending = pending[:0]
			}
			if len(pending) > 0 {
				// Wait a little for the rest of the write before deciding.
				_ = d.master.SetReadDeadline(time.Now().Add(rpcGap))
			}
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			_ = d.master.SetReadDeadline(time.Time{})
			if len(pending) > 0 {
				out = d.rpc(pending, reply, fc, out)
				pending = pending[:0]
			}
			continue
		}
		if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("device %s: read: %w", d.link, err)
		}
	}
}

func (d *device) lines(b []byte) {
	start := 0
	for i, c := range b {
		if c == '\n' {
			line := string(b[start:i])
			start = i + 1
			d.stats.Lines.Add(1)
			d.log.Info("attribute update line from gateway", "line", line)
		}
	}
}

func (d *device) rpc(in []byte, reply template, fc *frameCtx, out []byte) []byte {
	d.stats.RPCs.Add(1)
	fc.input = in
	out = reply.render(out[:0], fc)
	fc.input = nil
	d.log.Info("RPC write from gateway", "hex", fmt.Sprintf("%x", in), "reply", string(out))
	if len(out) > 0 {
		if err := d.write(out, false); err != nil {
			d.log.Warn("write RPC reply", "err", err)
		}
	}
	return out
}

// textLines reports whether b is one or more complete lines of printable
// UTF-8 text, each ending in \n (a \r before it is allowed): what the gateway
// writes for an attribute update. An empty line is not text: a lone \n is
// the int RPC parameter 10.
func textLines(b []byte) bool {
	if len(b) == 0 || b[len(b)-1] != '\n' || !utf8.Valid(b) {
		return false
	}
	lineLen := 0
	for _, r := range string(b) {
		switch {
		case r == '\n':
			if lineLen == 0 {
				return false
			}
			lineLen = 0
		case r == '\r' || r == '\t' || unicode.IsPrint(r):
			lineLen++
		default:
			return false
		}
	}
	return true
}
