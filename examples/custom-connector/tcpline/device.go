package tcpline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
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
	// stableAfter is how long a connection must last for the backoff to start again
	// at minBackoff, so that a device that accepts and at once drops connections is
	// retried less and less often.
	stableAfter = 10 * time.Second
	// tcpKeepAlive lets the kernel notice a peer that vanished without a FIN.
	tcpKeepAlive = 15 * time.Second
	// downlinkQueue bounds the attribute updates and RPCs waiting for a device's writer.
	downlinkQueue = 64
)

var errNotConnected = errors.New("device not connected")

// device is one configured device: its reader goroutine (connection, lines, uplink)
// and its writer goroutine (attribute updates, RPCs).
type device struct {
	c    *TCPLineConnector
	cfg  *deviceConfig
	log  *slog.Logger
	up   connector.UplinkConverter
	down connector.DownlinkConverter

	minBackoff, maxBackoff time.Duration

	connected atomic.Bool
	announced atomic.Bool // AddDevice called

	mu     sync.Mutex // guards conn, waiter, closed
	conn   net.Conn
	waiter *responseWaiter
	closed bool

	jobs chan func(ctx context.Context)
}

// responseWaiter receives the rest of the first line that starts with prefix: the
// answer to an RPC.
type responseWaiter struct {
	prefix string
	ch     chan string // capacity 1
}

func newDevice(c *TCPLineConnector, dc *deviceConfig, up connector.UplinkConverter, down connector.DownlinkConverter) *device {
	return &device{c: c, cfg: dc, log: c.log.With("device", dc.name), up: up, down: down,
		minBackoff: minBackoff, maxBackoff: maxBackoff,
		jobs: make(chan func(context.Context), downlinkQueue)}
}

// shutdown closes the connection so that a blocked read returns; the reader then
// sees its context done.
func (d *device) shutdown() {
	d.mu.Lock()
	d.closed = true
	conn := d.conn
	d.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
}

// setConn publishes the connection, or reports false when the connector is closing.
func (d *device) setConn(conn net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if conn != nil && d.closed {
		return false
	}
	d.conn = conn
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

// readLoop connects, reads lines until the connection fails, and connects again with
// backoff, until ctx is done. It logs one line per step.
func (d *device) readLoop(ctx context.Context) {
	backoff := d.minBackoff
	dialer := net.Dialer{Timeout: d.cfg.connectTimeout, KeepAlive: tcpKeepAlive}
	for ctx.Err() == nil {
		conn, err := dialer.DialContext(ctx, "tcp", d.cfg.address)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Warn("cannot connect to device", "address", d.cfg.address, "error", err, "retryIn", backoff.String())
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, d.maxBackoff)
			continue
		}
		if !d.setConn(conn) {
			_ = conn.Close()
			return
		}
		connectedAt := time.Now()
		d.connected.Store(true)
		d.log.Info("connected to device", "address", d.cfg.address)
		if d.announced.CompareAndSwap(false, true) {
			// Announce the device now, so that RPCs and attribute updates reach it
			// before it sends its first line.
			d.c.gw.AddDevice(d.cfg.name, d.cfg.typ, d.c)
		}
		err = d.readLines(ctx, conn)
		d.connected.Store(false)
		d.setConn(nil)
		_ = conn.Close()
		if ctx.Err() != nil {
			return
		}
		if time.Since(connectedAt) >= stableAfter {
			backoff = d.minBackoff // a new failure, not a flapping device
		}
		d.log.Warn("connection to device lost, reconnecting", "address", d.cfg.address, "error", err, "retryIn", backoff.String())
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, d.maxBackoff)
	}
}

// readLines reads lines from conn and handles each until the connection fails. A line
// longer than maxLineLength is dropped whole (and logged) without ending the
// connection. It returns the error that ended the connection (io.EOF when the device
// closed it).
func (d *device) readLines(ctx context.Context, conn net.Conn) error {
	r := bufio.NewReaderSize(conn, 4096)
	line := make([]byte, 0, 256)
	tooLong := false
	for {
		if d.cfg.readTimeout > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(d.cfg.readTimeout))
		}
		chunk, err := r.ReadSlice('\n')
		if !tooLong && len(chunk) > 0 {
			if len(line)+len(chunk) > d.cfg.maxLine+1 { // +1: the '\n'
				tooLong, line = true, line[:0]
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // the line goes on in the next chunk
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("no line for %s (readTimeoutSec): %w", d.cfg.readTimeout, err)
			}
			return err // a partial last line is dropped: the device did not finish it
		}
		if tooLong {
			tooLong = false
			d.log.Error("line longer than maxLineLength dropped", "maxLineLength", d.cfg.maxLine)
			continue
		}
		d.handleLine(bytes.TrimRight(line, "\r\n"), time.Now())
		line = line[:0]
	}
}

// handleLine gives a line to a waiting RPC, or converts it and sends it to storage.
// line is only valid during the call.
func (d *device) handleLine(line []byte, readAt time.Time) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if d.offerToWaiter(line) {
		return
	}
	// The converter may keep the bytes: give it its own copy.
	data, err := d.up.Convert(bytes.Clone(line))
	if err != nil {
		d.log.Warn("cannot convert line", "error", err)
		return
	}
	if data == nil || data.Empty() {
		d.log.Debug("line has no configured key", "line", clip(string(line)))
		return
	}
	// A line without a timestamp of its own was measured when it arrived.
	for i := range data.Telemetry {
		if data.Telemetry[i].TS == 0 {
			data.Telemetry[i].TS = readAt.UnixMilli()
		}
	}
	// SendToStorage blocks while storage applies back-pressure: the reader waits and
	// the device's lines wait in the socket (TCP flow control), so nothing is dropped.
	if err := d.c.gw.SendToStorage(d.c.name, d.c.id, data); err != nil {
		d.log.Warn("cannot send data to storage", "error", err)
	}
}

// offerToWaiter hands the line to the RPC waiting for an answer when it starts with
// the expected prefix.
func (d *device) offerToWaiter(line []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.waiter
	if w == nil || !bytes.HasPrefix(line, []byte(w.prefix)) {
		return false
	}
	d.waiter = nil
	w.ch <- string(line[len(w.prefix):])
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

// write writes one line to the connection. Only the writer goroutine writes.
func (d *device) write(b []byte) error {
	d.mu.Lock()
	conn := d.conn
	d.mu.Unlock()
	if conn == nil {
		return errNotConnected
	}
	_ = conn.SetWriteDeadline(time.Now().Add(d.cfg.writeTimeout))
	if _, err := conn.Write(b); err != nil {
		return fmt.Errorf("write to %s: %w", d.cfg.address, err)
	}
	d.log.Debug("written to device", "line", clip(strings.TrimRight(string(b), "\r\n")))
	return nil
}

// writeLoop runs the queued attribute updates and RPCs one at a time.
func (d *device) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-d.jobs:
			job(ctx)
		}
	}
}

// enqueue queues a job for the writer without blocking; it reports false when the
// queue is full.
func (d *device) enqueue(job func(context.Context)) bool {
	select {
	case d.jobs <- job:
		return true
	default:
		return false
	}
}

// onAttributes converts every updated attribute that has an entry (or the device's
// attributeTemplate) into a line, and queues the writes.
func (d *device) onAttributes(data map[string]any) {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys) // one update, one order on the wire
	var lines [][]byte
	var skipped []string
	for _, k := range keys {
		entry := d.cfg.attributeUpdates[k]
		if entry == nil {
			if d.cfg.attributeTemplate == "" {
				skipped = append(skipped, k)
				continue
			}
			entry = map[string]any{"attributeOnPlatform": k, "stringToDevice": d.cfg.attributeTemplate}
		}
		b, err := d.down.Convert(entry, data[k])
		if err != nil {
			d.log.Error("cannot convert attribute update", "attribute", k, "error", err)
			continue
		}
		if len(b) > 0 {
			lines = append(lines, b)
		}
	}
	if len(skipped) > 0 {
		d.log.Warn("no attributeUpdates entry nor attributeTemplate for updated attributes", "attributes", skipped)
	}
	if len(lines) == 0 {
		return
	}
	if !d.enqueue(func(ctx context.Context) {
		for _, b := range lines {
			if err := d.write(b); err != nil && ctx.Err() == nil {
				d.log.Error("cannot write attribute update to device", "error", err)
			}
		}
	}) {
		d.log.Error("attribute update dropped: the device's write queue is full", "attributes", keys)
	}
}

func (d *device) onRPC(r connector.RPCRequest) {
	if d.c.stopped.Load() {
		d.c.reply(r.Device, r.ID, errorReply("Connector is stopped"))
		return
	}
	rc := d.cfg.rpcs[r.Method]
	if rc == nil {
		d.log.Error("RPC method not configured", "method", r.Method)
		d.c.reply(r.Device, r.ID, errorReply("Method not found"))
		return
	}
	if !d.enqueue(func(ctx context.Context) { d.handleRPC(ctx, r, rc) }) {
		d.log.Error("RPC refused: the device's write queue is full", "method", r.Method)
		d.c.reply(r.Device, r.ID, errorReply("Device busy"))
	}
}

// handleRPC writes the converted request and, for an RPC with response, waits for
// the answer line. It runs on the writer goroutine.
func (d *device) handleRPC(ctx context.Context, r connector.RPCRequest, rc *rpcConfig) {
	reply := func(content any) { d.c.reply(r.Device, r.ID, content) }
	b, err := d.down.Convert(rc.raw, r.Params)
	if err != nil {
		d.log.Error("cannot convert RPC", "method", r.Method, "error", err)
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
	// The waiter is in place before the request leaves, so that a fast answer is not
	// taken for data.
	w := &responseWaiter{prefix: rc.responsePrefix, ch: make(chan string, 1)}
	d.setWaiter(w)
	if err := d.write(b); err != nil {
		d.clearWaiter(w)
		d.log.Error("cannot write RPC to device", "method", r.Method, "error", err)
		reply(errorReply(err.Error()))
		return
	}
	timer := time.NewTimer(rc.responseTimeout)
	defer timer.Stop()
	var answer string
	select {
	case answer = <-w.ch:
	case <-timer.C:
		d.clearWaiter(w)
		select { // a line that came as the timer fired is still the answer
		case answer = <-w.ch:
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
	reply(map[string]any{"result": answerValue(answer)})
}

// answerValue is the answer line after its prefix: JSON when it is valid JSON
// (42, true, {"ok":true}), else the text.
func answerValue(s string) any {
	s = strings.TrimSpace(s)
	if s != "" && json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	return s
}
