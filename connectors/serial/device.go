package serial

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// Reconnect backoff: the first retry after 1 s, doubling up to 30 s.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
	// stableAfter is how long a port must work for the backoff to start again at
	// minBackoff, so that a port that fails right after every open is retried less
	// and less often.
	stableAfter = 10 * time.Second
	// readBlock is how much one read asks for.
	readBlock = 4096
	// firstReadBlock is a new port's read block until a read fills it.
	firstReadBlock = 256
	// downlinkQueue bounds the attribute updates and RPCs waiting for a device's writer.
	downlinkQueue = 64
)

var errNotConnected = errors.New("device not connected")

// device is one configured device: its reader goroutine (port, framing, uplink) and,
// while it has queued attribute updates or RPCs, its writer goroutine.
type device struct {
	c    *SerialConnector
	cfg  *deviceConfig
	log  *slog.Logger
	up   connector.UplinkConverter
	upAt *UplinkConverter // the built-in converter, which takes the frame's timestamp
	down connector.DownlinkConverter
	rpcs map[string]*rpcConfig

	minBackoff, maxBackoff time.Duration

	connected atomic.Bool
	announced bool // reader goroutine only

	mu     sync.Mutex // guards port, waiter, closed
	port   *serialPort
	waiter *responseWaiter
	closed bool

	// qmu guards jobs and writing. A device has a writer goroutine only while
	// writing is true: enqueue sets it and starts one, and the writer clears it and
	// exits when it finds jobs empty, both under qmu, so a job is never left queued
	// with no writer to run it. Lock order: qmu, then the connector's mu.
	qmu     sync.Mutex
	jobs    []func(ctx context.Context) // FIFO, at most downlinkQueue; nil when idle
	writing bool
}

// writerExited, when set by a test, is called each time a writer goroutine has found
// its queue empty and is about to return.
var writerExited func(d *device)

// responseWaiter receives the first frame read at or after since: an RPC's response.
type responseWaiter struct {
	since time.Time
	ch    chan []byte // capacity 1
}

func newDevice(c *SerialConnector, dc *deviceConfig, up connector.UplinkConverter, down connector.DownlinkConverter) *device {
	d := &device{c: c, cfg: dc, log: c.log.With("device", dc.name), up: up, down: down,
		rpcs: make(map[string]*rpcConfig, len(dc.rpcs)), minBackoff: minBackoff, maxBackoff: maxBackoff}
	if u, ok := up.(*UplinkConverter); ok {
		d.upAt = u
	}
	for i := range dc.rpcs {
		if _, dup := d.rpcs[dc.rpcs[i].method]; !dup { // the first entry of a method wins
			d.rpcs[dc.rpcs[i].method] = &dc.rpcs[i]
		}
	}
	return d
}

// shutdown closes the port so that a blocked read returns; the reader then sees its
// context done.
func (d *device) shutdown() {
	d.mu.Lock()
	d.closed = true
	p := d.port
	d.mu.Unlock()
	if p != nil {
		p.Close()
	}
}

// setPort publishes the open port, or reports false when the connector is closing.
func (d *device) setPort(p *serialPort) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p != nil && d.closed {
		return false
	}
	d.port = p
	return true
}

// sleep waits for t or until ctx is done; it reports whether t passed.
func sleep(ctx context.Context, t time.Duration) bool {
	timer := time.NewTimer(t)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// readLoop opens the port, reads frames until it fails, and reopens it with backoff,
// until ctx is done.
func (d *device) readLoop(ctx context.Context) {
	// The read block starts small and grows to readBlock the first time a read fills
	// it: a slow device never needs more, and a gateway with a thousand ports keeps
	// a few MB less of idle buffers.
	buf := make([]byte, firstReadBlock)
	fr := newFramer(d.cfg.framing)
	backoff := d.minBackoff
	if d.cfg.dsrdtr {
		d.log.Warn("dsrdtr has no effect on Linux (as with pyserial there)")
	}
	for ctx.Err() == nil {
		p, err := openPort(d.cfg, d.log)
		if err != nil {
			d.log.Error("cannot open serial port", "port", d.cfg.port, "error", err, "retryIn", backoff.String())
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, d.maxBackoff)
			continue
		}
		if !d.setPort(p) {
			p.Close()
			return
		}
		openedAt := time.Now()
		d.connected.Store(true)
		d.log.Info("serial port open", "port", d.cfg.port, "baudrate", d.cfg.baudrate)
		if !d.announced {
			d.announced = true
			d.c.gw.AddDevice(d.cfg.name, d.cfg.typ, d.c)
		}
		fr.reset()
		err = d.readFrames(ctx, p, &buf, fr)
		d.connected.Store(false)
		d.setPort(nil)
		p.Close()
		if ctx.Err() != nil {
			return
		}
		if time.Since(openedAt) >= stableAfter {
			// The port worked for a while: this is a new failure, not a flapping one.
			backoff = d.minBackoff
		}
		d.log.Error("serial port failed, reopening", "port", d.cfg.port, "error", err, "retryIn", backoff.String())
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, d.maxBackoff)
	}
}

// readFrames reads blocks from p and handles every complete frame. It returns the
// error that ended the port (EOF and hangup are errors too).
func (d *device) readFrames(ctx context.Context, p *serialPort, bufp *[]byte, fr *framer) error {
	for {
		timeout := d.cfg.timeout
		if dl, ok := fr.deadline(); ok {
			// A timed frame must be closed on time even when the line stays silent.
			wait := max(time.Until(dl), time.Millisecond)
			if timeout == 0 || wait < timeout {
				timeout = wait
			}
		}
		buf := *bufp
		n, err := p.Read(buf, timeout)
		now := time.Now()
		if n > 0 {
			fr.push(buf[:n], now)
		}
		if n == len(buf) && len(buf) < readBlock {
			*bufp = make([]byte, readBlock)
		}
		for {
			frame, ok := fr.next(now)
			if !ok {
				break
			}
			d.handleFrame(frame, now)
		}
		if k := fr.takeDropped(); k > 0 {
			d.log.Error("frame longer than maxFrameSize dropped", "frames", k, "maxFrameSize", d.cfg.framing.maxSize)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
}

// handleFrame gives a frame to a waiting RPC, or converts it and sends it to storage.
// frame is only valid during the call.
func (d *device) handleFrame(frame []byte, readAt time.Time) {
	if d.giveToWaiter(frame, readAt) {
		return
	}
	ts := readAt.UnixMilli()
	var data *connector.ConvertedData
	if d.upAt != nil {
		data = d.upAt.ConvertAt(frame, ts)
	} else {
		var err error
		// Another converter may keep the bytes: give it its own copy.
		data, err = d.up.Convert(bytes.Clone(frame))
		if err != nil {
			d.log.Error("cannot convert frame", "error", err, "frame", hex.EncodeToString(frame))
			return
		}
		if data == nil {
			return
		}
		for i := range data.Telemetry {
			if data.Telemetry[i].TS == 0 {
				data.Telemetry[i].TS = ts
			}
		}
	}
	if rs := d.c.conf.reportStrategy; rs != nil {
		applyStrategy(data, rs)
	}
	if data.Empty() {
		d.log.Debug("frame has no datapoint", "frame", hex.EncodeToString(frame))
		return
	}
	// SendToStorage blocks while storage applies back-pressure: the reader waits and
	// the bytes wait in the port, so nothing is dropped.
	if err := d.c.gw.SendToStorage(d.c.name, d.c.id, data); err != nil {
		d.log.Warn("cannot send data to storage", "error", err)
	}
}

// applyStrategy gives the connector's report strategy to datapoints that have none.
func applyStrategy(data *connector.ConvertedData, rs *connector.ReportStrategy) {
	for i := range data.Telemetry {
		for j := range data.Telemetry[i].Values {
			if data.Telemetry[i].Values[j].Strategy == nil {
				data.Telemetry[i].Values[j].Strategy = rs
			}
		}
	}
	for i := range data.Attributes {
		if data.Attributes[i].Strategy == nil {
			data.Attributes[i].Strategy = rs
		}
	}
}

// giveToWaiter hands frame to the RPC waiting for a response, if any. The hand-off
// happens under the lock that clearWaiter takes, so a timeout either sees the frame
// in the channel or keeps it out: a frame is never lost between the two.
func (d *device) giveToWaiter(frame []byte, readAt time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.waiter
	if w == nil || readAt.Before(w.since) {
		return false
	}
	d.waiter = nil
	w.ch <- bytes.Clone(frame) // capacity 1, one frame per waiter: never blocks
	return true
}

func (d *device) setWaiter(w *responseWaiter) {
	d.mu.Lock()
	d.waiter = w
	d.mu.Unlock()
}

func (d *device) clearWaiter(w *responseWaiter) {
	d.mu.Lock()
	if d.waiter == w {
		d.waiter = nil
	}
	d.mu.Unlock()
}

// write writes b to the open port. Only the writer goroutine writes.
func (d *device) write(b []byte) error {
	d.mu.Lock()
	p := d.port
	d.mu.Unlock()
	if p == nil {
		return errNotConnected
	}
	if _, err := p.Write(b); err != nil {
		return fmt.Errorf("write to %s: %w", d.cfg.port, err)
	}
	d.log.Debug("written to device", "bytes", hex.EncodeToString(b))
	return nil
}

// writeLoop runs the queued attribute updates and RPCs one at a time, in order, and
// returns when the queue is empty. Jobs run with ctx even once it is cancelled: a job
// queued when the connector closes still runs, so that every RPC gets its reply
// ("Connector is stopped") instead of a platform timeout.
func (d *device) writeLoop(ctx context.Context) {
	for {
		d.qmu.Lock()
		if len(d.jobs) == 0 {
			// Check and exit under the lock enqueue takes: a job queued after this
			// sees writing false and starts a new writer.
			d.jobs = nil // an idle device keeps no queue array
			d.writing = false
			d.qmu.Unlock()
			if writerExited != nil {
				writerExited(d)
			}
			return
		}
		job := d.jobs[0]
		d.jobs[0] = nil
		d.jobs = d.jobs[1:]
		d.qmu.Unlock()
		job(ctx)
	}
}

// enqueue queues a job for the writer without blocking, starting a writer when none
// runs; it reports false when the queue is full.
func (d *device) enqueue(job func(context.Context)) bool {
	d.qmu.Lock()
	if len(d.jobs) >= downlinkQueue {
		d.qmu.Unlock()
		return false
	}
	d.jobs = append(d.jobs, job)
	d.startWriterLocked()
	return true
}

// kick starts a writer for jobs queued while no writer could start (before Open).
func (d *device) kick() {
	d.qmu.Lock()
	if len(d.jobs) == 0 {
		d.qmu.Unlock()
		return
	}
	d.startWriterLocked()
}

// startWriterLocked starts the device's writer unless one runs, and unlocks qmu.
// Before Open the jobs stay queued for Open to start them. After Close no goroutine
// may start, so the caller drains the queue itself with the cancelled context.
func (d *device) startWriterLocked() {
	if d.writing {
		d.qmu.Unlock()
		return
	}
	started, stopped := d.c.spawn(d.writeLoop)
	if started || stopped != nil {
		d.writing = true
	}
	d.qmu.Unlock()
	if stopped != nil {
		d.writeLoop(stopped)
	}
}

func (d *device) onAttributes(data map[string]any) {
	var writes []string
	for _, au := range d.cfg.attributeUpdates {
		v, ok := data[au.attribute]
		if !ok {
			continue
		}
		s := strings.ReplaceAll(au.stringToDevice, "${"+au.attribute+"}", attributeText(v))
		s = strings.ReplaceAll(s, "${deviceName}", d.cfg.name)
		s = strings.ReplaceAll(s, "${deviceType}", d.cfg.typ)
		writes = append(writes, s)
	}
	if len(writes) == 0 {
		d.log.Warn("no attributeUpdates entry for the updated attributes", "attributes", keysOf(data))
		return
	}
	if !d.enqueue(func(ctx context.Context) {
		for _, s := range writes {
			if err := d.write([]byte(s)); err != nil && ctx.Err() == nil {
				d.log.Error("cannot write attribute update to device", "error", err, "text", clip(s))
			}
		}
	}) {
		d.log.Error("attribute update dropped: the device's write queue is full", "attributes", keysOf(data))
	}
}

// attributeText renders an attribute value for stringToDevice: strings as they are,
// everything else as JSON text (true/false, 25, 2.5, {"a":1}).
func attributeText(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// clip shortens text for a log line.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (d *device) onRPC(r connector.RPCRequest) {
	if d.c.stopped.Load() {
		d.c.replyAsync(r.Device, r.ID, errorReply("Connector is stopped"))
		return
	}
	rc := d.rpcs[r.Method]
	if rc == nil {
		d.log.Error("RPC method not configured", "method", r.Method)
		d.c.replyAsync(r.Device, r.ID, errorReply("Method not found"))
		return
	}
	if !d.enqueue(func(ctx context.Context) { d.handleRPC(ctx, r, rc) }) {
		d.log.Error("RPC refused: the device's write queue is full", "method", r.Method)
		d.c.replyAsync(r.Device, r.ID, errorReply("Device busy"))
	}
}

// handleRPC writes the converted params and, for an RPC with response, waits for the
// next frame. It runs on the writer goroutine.
func (d *device) handleRPC(ctx context.Context, r connector.RPCRequest, rc *rpcConfig) {
	reply := func(content any) { d.c.reply(r.Device, r.ID, content) }
	if ctx.Err() != nil {
		reply(errorReply("Connector is stopped"))
		return
	}
	b, err := d.down.Convert(rc.raw, r.Params)
	if err != nil {
		d.log.Error("cannot convert RPC params", "method", r.Method, "error", err)
		reply(errorReply(err.Error()))
		return
	}
	if len(b) == 0 {
		reply(errorReply("No data to send"))
		return
	}
	if !rc.withResponse {
		if err := d.write(b); err != nil {
			d.log.Error("cannot write RPC to device", "method", r.Method, "error", err)
			reply(errorReply(err.Error()))
			return
		}
		reply(map[string]any{"success": true})
		return
	}
	w := &responseWaiter{since: time.Now(), ch: make(chan []byte, 1)}
	d.setWaiter(w)
	if err := d.write(b); err != nil {
		d.clearWaiter(w)
		d.log.Error("cannot write RPC to device", "method", r.Method, "error", err)
		reply(errorReply(err.Error()))
		return
	}
	timer := time.NewTimer(rc.responseTimeout)
	defer timer.Stop()
	var frame []byte
	select {
	case frame = <-w.ch:
	case <-timer.C:
		d.clearWaiter(w)
		select { // a frame that came as the timer fired is still the answer
		case frame = <-w.ch:
		default:
			d.log.Warn("RPC response timeout", "method", r.Method, "timeout", rc.responseTimeout.String())
			reply(errorReply("Timeout waiting for response"))
			return
		}
	case <-ctx.Done():
		d.clearWaiter(w)
		reply(errorReply("Connector is stopped"))
		return
	}
	v, err := rc.response.value(frame)
	if err != nil {
		d.log.Error("cannot convert RPC response", "method", r.Method, "error", err, "frame", hex.EncodeToString(frame))
		reply(errorReply(fmt.Sprintf("Cannot convert response %s: %v", hex.EncodeToString(frame), err)))
		return
	}
	reply(map[string]any{"result": v})
}
