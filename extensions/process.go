package extensions

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// Defaults of a process connector's timings and bounds.
const (
	// DownlinkQueueSize bounds the messages waiting for the process's stdin; when
	// full, a downlink message is dropped (an RPC gets an error reply).
	DownlinkQueueSize = 256
	// RPCTimeout is how long the process has to answer an RPC before the connector
	// answers the platform with an error.
	RPCTimeout = 30 * time.Second
	// StopGrace is how long Close waits after "stop" before killing the process group.
	StopGrace = 3 * time.Second
	// MinRestartDelay and MaxRestartDelay bound the backoff between restarts; the
	// delay doubles each time the process dies within StableRun of its start.
	MinRestartDelay = 1 * time.Second
	MaxRestartDelay = 30 * time.Second
	StableRun       = 30 * time.Second
)

// readerGrace is how long a dead process's output is still read before its pipes are
// closed (a grandchild outside the process group could hold them open).
const readerGrace = 2 * time.Second

// maxStderrLine bounds one logged stderr line; the rest of a longer line is dropped.
const maxStderrLine = 16 << 10

// Error replies the connector sends for the process.
var (
	replyTimeout   = map[string]any{"error": "Timeout waiting for response", "success": false}
	replyQueueFull = map[string]any{"error": "Downlink queue full", "success": false}
	replyExited    = map[string]any{"error": "Extension process exited", "success": false}
)

type rpcKey struct {
	device string
	id     int
}

// processConnector is a connector.Connector whose work is done by a child process
// speaking the line-delimited JSON protocol (docs/extensions.md).
type processConnector struct {
	gw      connector.Gateway
	name    string
	typ     string
	id      string
	argv    []string
	dir     string
	log     *slog.Logger
	cfgLine []byte

	// Timings, set from the defaults; tests shorten them.
	rpcTimeout, stopGrace, minDelay, maxDelay, stableRun time.Duration

	down      chan []byte // bounded: the process's stdin queue
	connected atomic.Bool
	opened    atomic.Bool
	closeOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{} // closed when the supervisor returned

	mu      sync.Mutex
	closed  bool
	pending map[rpcKey]*time.Timer
	wg      sync.WaitGroup // supervisor and reply goroutines

	malformed logLimiter
	starts    atomic.Int64 // processes started, for tests and logs
}

func newProcessConnector(gw connector.Gateway, cfg connector.Config, argv []string, dir string, log *slog.Logger) (*processConnector, error) {
	line, err := configLine(cfg)
	if err != nil {
		return nil, fmt.Errorf("extension connector %q: %w", cfg.Name, err)
	}
	if cfg.Logger != nil {
		log = cfg.Logger // already names the connector
	} else {
		log = log.With("connector", cfg.Name)
	}
	return &processConnector{
		gw: gw, name: cfg.Name, typ: cfg.Type, id: cfg.ID, argv: argv, dir: dir,
		log:        log.With("program", argv[len(argv)-1]),
		cfgLine:    line,
		rpcTimeout: RPCTimeout, stopGrace: StopGrace,
		minDelay: MinRestartDelay, maxDelay: MaxRestartDelay, stableRun: StableRun,
		down:    make(chan []byte, DownlinkQueueSize),
		pending: map[rpcKey]*time.Timer{},
		done:    make(chan struct{}),
	}, nil
}

// Name implements connector.Connector.
func (c *processConnector) Name() string { return c.name }

// Type implements connector.Connector.
func (c *processConnector) Type() string { return c.typ }

// ID implements connector.Connector.
func (c *processConnector) ID() string { return c.id }

// IsConnected reports the process's last "status" message; true while it runs and
// has sent none; false while it is not running.
func (c *processConnector) IsConnected() bool { return c.connected.Load() }

// IsStopped implements connector.Connector.
func (c *processConnector) IsStopped() bool {
	if !c.opened.Load() {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Open starts the supervisor that runs the process and restarts it when it dies.
func (c *processConnector) Open(ctx context.Context) error {
	if !c.opened.CompareAndSwap(false, true) {
		return fmt.Errorf("extension connector %q: already opened", c.name)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(c.done)
		c.supervise(runCtx)
	}()
	return nil
}

// Close sends "stop", waits up to the stop grace for the process to exit, kills its
// process group otherwise, and waits for every goroutine. RPCs still waiting for a
// reply are dropped, as the gateway is stopping.
func (c *processConnector) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		for k, t := range c.pending {
			t.Stop()
			delete(c.pending, k)
			c.log.Warn("RPC dropped: connector closed", "device", k.device, "id", k.id)
		}
		c.mu.Unlock()
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
	})
	return nil
}

// OnAttributesUpdate queues {"type":"attributes"} for the process; when the queue is
// full the update is dropped and logged.
func (c *processConnector) OnAttributesUpdate(u connector.AttributeUpdate) {
	line, err := encodeLine(downAttributes{V: ProtocolVersion, Type: msgAttributes, Device: u.Device, Data: u.Data})
	if err != nil {
		c.log.Error("attribute update not encodable", "device", u.Device, "err", err)
		return
	}
	select {
	case c.down <- line:
	default:
		c.log.Error("attribute update dropped: downlink queue full", "device", u.Device, "queue", cap(c.down))
	}
}

// ServerSideRPC queues {"type":"rpc"} for the process and starts the reply timeout.
func (c *processConnector) ServerSideRPC(r connector.RPCRequest) {
	line, err := encodeLine(downRPC{V: ProtocolVersion, Type: msgRPC, Device: r.Device, ID: r.ID, Method: r.Method, Params: r.Params})
	if err != nil {
		c.replyAsync(r.Device, r.ID, map[string]any{"error": "params not encodable: " + err.Error(), "success": false})
		return
	}
	k := rpcKey{r.Device, r.ID}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if old, dup := c.pending[k]; dup {
		old.Stop()
	}
	c.pending[k] = time.AfterFunc(c.rpcTimeout, func() { c.expire(k) })
	c.mu.Unlock()
	select {
	case c.down <- line:
	default:
		c.log.Error("RPC dropped: downlink queue full", "device", r.Device, "id", r.ID, "method", r.Method)
		if c.takePending(k) {
			c.replyAsync(r.Device, r.ID, replyQueueFull)
		}
	}
}

// expire answers an RPC the process did not answer in time.
func (c *processConnector) expire(k rpcKey) {
	if c.takePending(k) {
		c.log.Warn("RPC timed out waiting for the extension process", "device", k.device, "id", k.id, "timeout", c.rpcTimeout)
		c.replyAsync(k.device, k.id, replyTimeout)
	}
}

// takePending removes an RPC from the pending set; false if it was not there (already
// answered, timed out or closed).
func (c *processConnector) takePending(k rpcKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.pending[k]
	if ok {
		t.Stop()
		delete(c.pending, k)
	}
	return ok
}

// failPending answers every waiting RPC with an error: the process that had them died.
func (c *processConnector) failPending() {
	c.mu.Lock()
	keys := make([]rpcKey, 0, len(c.pending))
	for k, t := range c.pending {
		t.Stop()
		delete(c.pending, k)
		keys = append(keys, k)
	}
	c.mu.Unlock()
	for _, k := range keys {
		c.replyAsync(k.device, k.id, replyExited)
	}
}

// replyAsync sends an RPC reply from a goroutine the connector owns, as
// SendRPCReply waits for the platform and its callers must not.
func (c *processConnector) replyAsync(device string, id int, content any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := c.gw.SendRPCReply(device, id, content); err != nil {
			c.log.Warn("RPC reply failed", "device", device, "id", id, "err", err)
		}
	}()
}

// supervise runs the process until ctx ends, restarting it with backoff.
func (c *processConnector) supervise(ctx context.Context) {
	delay := c.minDelay
	for {
		start := time.Now()
		err := c.runOnce(ctx)
		c.connected.Store(false)
		c.failPending()
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= c.stableRun {
			delay = c.minDelay
		}
		c.log.Warn("extension process stopped; restarting", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, c.maxDelay)
	}
}

// runOnce starts the process, serves it until it exits or ctx ends, and cleans up
// its process group and pipes. It returns why the process ended.
func (c *processConnector) runOnce(ctx context.Context) (err error) {
	var files []*os.File
	pipe := func() (r, w *os.File) {
		if err != nil {
			return nil, nil
		}
		r, w, err = os.Pipe()
		files = append(files, r, w)
		return r, w
	}
	stdinR, stdinW := pipe()
	stdoutR, stdoutW := pipe()
	stderrR, stderrW := pipe()
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return fmt.Errorf("pipes: %w", err)
	}
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Dir = c.dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, stdoutW, stderrW
	// Its own process group, so that Close kills what it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	// The child has its copies; ours would keep the pipes open after it exits.
	stdinR.Close()
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		stdinW.Close()
		stdoutR.Close()
		stderrR.Close()
		return fmt.Errorf("start %s: %w", strings.Join(c.argv, " "), err)
	}
	pid := cmd.Process.Pid
	c.starts.Add(1)
	c.connected.Store(true)
	c.log.Info("extension process started", "pid", pid)

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // ends when the process does; awaited below

	var ioWG sync.WaitGroup
	quit := make(chan struct{})
	stopReq := make(chan struct{})
	ioWG.Add(3)
	go func() { defer ioWG.Done(); c.writeStdin(stdinW, quit, stopReq) }()
	go func() { defer ioWG.Done(); c.readStdout(stdoutR) }()
	go func() { defer ioWG.Done(); c.readStderr(stderrR) }()

	var waitErr error
	select {
	case waitErr = <-exited:
	case <-ctx.Done():
		close(stopReq)
		t := time.NewTimer(c.stopGrace)
		select {
		case waitErr = <-exited:
			t.Stop()
		case <-t.C:
			c.log.Warn("extension process did not stop; killing its process group", "pid", pid, "after", c.stopGrace)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			waitErr = <-exited
		}
	}
	// Whatever the process left running in its group goes with it.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	close(quit)
	readersDone := make(chan struct{})
	go func() { ioWG.Wait(); close(readersDone) }()
	t := time.NewTimer(readerGrace)
	select {
	case <-readersDone:
		t.Stop()
	case <-t.C:
		// Someone outside the group holds the pipes: stop reading them.
		stdoutR.Close()
		stderrR.Close()
		stdinW.Close()
		<-readersDone
	}
	stdoutR.Close()
	stderrR.Close()
	if waitErr == nil {
		waitErr = errors.New("exited with status 0")
	}
	return waitErr
}

// writeStdin sends the configuration, then queued messages, until quit (the process
// is gone) or stopReq (send "stop" and close stdin).
func (c *processConnector) writeStdin(w *os.File, quit, stopReq <-chan struct{}) {
	defer w.Close()
	if _, err := w.Write(c.cfgLine); err != nil {
		c.log.Warn("extension process did not take its configuration", "err", err)
		return
	}
	for {
		select {
		case <-quit:
			return
		case <-stopReq:
			_ = w.SetWriteDeadline(time.Now().Add(c.stopGrace))
			if _, err := w.Write(stopLine); err != nil {
				c.log.Debug("stop not delivered", "err", err)
			}
			return
		case line := <-c.down:
			if _, err := w.Write(line); err != nil {
				// The process is going away; an RPC in line gets its error reply
				// when the exit is noticed.
				c.log.Warn("downlink message lost: extension process stdin closed", "err", err)
				return
			}
		}
	}
}

// readStdout reads protocol lines until EOF. A line longer than MaxLineSize is
// dropped whole.
func (c *processConnector) readStdout(r io.Reader) {
	readLines(r, MaxLineSize, func(line []byte, tooLong bool) {
		if tooLong {
			c.badLine(fmt.Errorf("line longer than %d bytes dropped", MaxLineSize), nil)
			return
		}
		c.handleLine(line)
	})
}

// readStderr logs the process's stderr, line by line; a very long line is cut.
func (c *processConnector) readStderr(r io.Reader) {
	readLines(r, maxStderrLine, func(line []byte, tooLong bool) {
		text := strings.TrimRight(string(line), "\r\n")
		if tooLong {
			text = fmt.Sprintf("(stderr line longer than %d bytes dropped)", maxStderrLine)
		}
		if text != "" {
			c.log.Info(text, "stream", "stderr")
		}
	})
}

// readLines calls fn with every line of r (with its "\n") until EOF or an error.
// A line longer than max bytes (without "\n") is skipped to its end and reported with
// tooLong; memory stays bounded by max.
func readLines(r io.Reader, max int, fn func(line []byte, tooLong bool)) {
	br := bufio.NewReaderSize(r, min(64<<10, max+1))
	var line []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > max+1 || (len(line)+len(chunk) == max+1 && chunk[len(chunk)-1] != '\n') {
				tooLong = true
				line = line[:0]
			} else {
				line = append(line, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if tooLong || len(line) > 0 {
			fn(line, tooLong)
		}
		line, tooLong = line[:0], false
		if err != nil {
			return
		}
	}
}

// handleLine acts on one message from the process.
func (c *processConnector) handleLine(line []byte) {
	text := strings.TrimSpace(string(line))
	if text == "" {
		return
	}
	m, err := decodeUp([]byte(text))
	if err != nil {
		c.badLine(err, []byte(text))
		return
	}
	switch m.Type {
	case msgData:
		d, err := m.converted()
		if err != nil {
			c.badLine(err, []byte(text))
			return
		}
		if d.Empty() {
			c.log.Debug("data without values skipped", "device", d.DeviceName)
			return
		}
		if err := c.gw.SendToStorage(c.name, c.id, d); err != nil {
			c.log.Warn("data not stored", "device", d.DeviceName, "err", err)
		}
	case msgConnect:
		if m.name() == "" {
			c.badLine(errors.New(`connect without "device"`), []byte(text))
			return
		}
		typ := m.DeviceType
		if typ == "" {
			typ = "default"
		}
		c.gw.AddDevice(m.name(), typ, c)
	case msgDisconnect:
		if m.name() == "" {
			c.badLine(errors.New(`disconnect without "device"`), []byte(text))
			return
		}
		c.gw.DelDevice(m.name())
	case msgRPCReply:
		c.rpcReply(m, text)
	case msgLog:
		c.log.Log(context.Background(), logLevel(m.Level), m.Msg, "stream", "process")
	case msgStatus:
		if m.Connected == nil {
			c.badLine(errors.New(`status without "connected"`), []byte(text))
			return
		}
		c.connected.Store(*m.Connected)
	default:
		c.badLine(fmt.Errorf("unknown message type %q", m.Type), []byte(text))
	}
}

// rpcReply forwards the process's answer to a waiting RPC.
func (c *processConnector) rpcReply(m *upMessage, text string) {
	if m.name() == "" || m.ID == nil {
		c.badLine(errors.New(`rpc_reply needs "device" and "id"`), []byte(text))
		return
	}
	k := rpcKey{m.name(), *m.ID}
	if !c.takePending(k) {
		c.log.Warn("reply to an RPC that is not waiting (timed out or never sent) dropped", "device", k.device, "id", k.id)
		return
	}
	var content any
	switch {
	case m.Error != nil:
		content = map[string]any{"error": *m.Error, "success": false}
	case len(m.Data) == 0 || string(m.Data) == "null":
		content = map[string]any{"success": true}
	default:
		content = m.Data
	}
	// Synchronously: a process that answers faster than the platform acknowledges
	// is slowed down by its own stdout, not by an unbounded set of goroutines.
	if err := c.gw.SendRPCReply(k.device, k.id, content); err != nil {
		c.log.Warn("RPC reply failed", "device", k.device, "id", k.id, "err", err)
	}
}

// badLine logs a line that was skipped, at most a few times per window.
func (c *processConnector) badLine(err error, line []byte) {
	ok, suppressed := c.malformed.allow(time.Now())
	if !ok {
		return
	}
	const show = 200
	if len(line) > show {
		line = append(line[:show:show], "..."...)
	}
	attrs := []any{"err", err}
	if line != nil {
		attrs = append(attrs, "line", string(line))
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	c.log.Warn("line from extension process skipped", attrs...)
}

func logLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "trace", "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error", "critical", "fatal":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// logLimiter lets through a few log lines per window and counts the rest, so that a
// process spewing garbage cannot flood the log.
type logLimiter struct {
	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

const (
	limitWindow = 10 * time.Second
	limitBurst  = 5
)

// allow reports whether to log now, and how many lines were suppressed since the
// last one logged.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= limitWindow {
		l.start, l.n = now, 0
	}
	if l.n >= limitBurst {
		l.suppressed++
		return false, 0
	}
	l.n++
	s := l.suppressed
	l.suppressed = 0
	return true, s
}
