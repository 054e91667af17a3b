// Package serial is the serial connector (type "serial", class "SerialConnector") and
// its converters (SerialUplinkConverter, SerialDownlinkConverter): the Go form of the
// ThingsBoard IoT Gateway's custom serial connector, with the Python bugs fixed.
//
// Each configured device has its own goroutines: a reader that opens the port (and
// reopens it with backoff when it fails), reads in blocks, cuts frames and hands them
// to the uplink converter and then to Gateway.SendToStorage; and, only while it has
// queued attribute updates or RPCs, a writer that runs them one at a time and exits
// when the queue is empty, so that a thousand idle ports keep no idle writers.
// docs/serial.md describes every key.
package serial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/iotgw/iotgw/connector"
)

func init() {
	connector.Register("serial", "SerialConnector", New)
	connector.RegisterUplink(defaultUplinkClass, NewUplinkConverter)
	connector.RegisterDownlink(defaultDownlinkClass, NewDownlinkConverter)
}

// SerialConnector reads and writes serial devices. It implements connector.Connector.
type SerialConnector struct {
	gw      connector.Gateway
	name    string
	typ     string
	id      string
	log     *slog.Logger
	conf    *connectorConfig
	devices []*device
	byName  map[string]*device

	// mu guards opened, closed, runCtx and cancel, and orders every wg.Add after
	// Open against the wg.Wait in Close: a goroutine is started only under mu while
	// closed is false, and Close sets closed under mu before it waits.
	mu      sync.Mutex
	opened  bool
	closed  bool
	runCtx  context.Context // the devices' context, cancelled by Close
	cancel  context.CancelFunc
	stopped atomic.Bool // written under mu; read without it
	close   sync.Once
	wg      sync.WaitGroup
}

// New is the connector's Factory. It validates the connector file and makes the
// converters of every device; it opens no port and starts no goroutine.
func New(gw connector.Gateway, cfg connector.Config) (connector.Connector, error) {
	return newConnector(gw, cfg)
}

func newConnector(gw connector.Gateway, cfg connector.Config) (*SerialConnector, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	where := cfg.Path
	if where == "" {
		where = "serial connector configuration"
	}
	conf, err := parseConfig(cfg.Raw, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	convs := cfg.Converters
	if convs == nil {
		convs = connector.BuiltinConverters{Logger: log}
	}
	name := cfg.Name
	if name == "" {
		name = conf.name
	}
	typ := cfg.Type
	if typ == "" {
		typ = "serial"
	}
	c := &SerialConnector{gw: gw, name: name, typ: typ, id: cfg.ID, log: log, conf: conf,
		byName: make(map[string]*device, len(conf.devices))}
	c.stopped.Store(true)
	for _, dc := range conf.devices {
		up, err := convs.Uplink(dc.uplinkClass, dc.raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %s.converter: %w", where, dc.path, err)
		}
		down, err := convs.Downlink(dc.downlinkClass, dc.raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %s.downlink_converter: %w", where, dc.path, err)
		}
		d := newDevice(c, dc, up, down)
		c.devices = append(c.devices, d)
		c.byName[dc.name] = d
	}
	return c, nil
}

// Open starts every device's reader and returns at once; ports are opened (and
// reopened) in the background. A device's writer starts when it has a job.
func (c *SerialConnector) Open(ctx context.Context) error {
	c.mu.Lock()
	if c.opened {
		c.mu.Unlock()
		return errors.New("serial connector: Open called twice")
	}
	if c.closed {
		c.mu.Unlock()
		return errors.New("serial connector: Open called after Close")
	}
	c.opened = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.runCtx, c.cancel = runCtx, cancel
	c.stopped.Store(false)
	for _, d := range c.devices {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); d.readLoop(runCtx) }()
	}
	c.mu.Unlock()
	// Attribute updates queued before Open run now. This is outside mu: a device
	// takes its queue lock first and mu second.
	for _, d := range c.devices {
		d.kick()
	}
	c.log.Info("serial connector started", "devices", len(c.devices))
	return nil
}

// spawn starts fn(runCtx) on a goroutine that Close waits for and reports true with a
// nil context. Otherwise it starts nothing and reports false: before Open with a nil
// context, and once Close has begun with a cancelled context, in which the caller may
// run the work itself.
func (c *SerialConnector) spawn(fn func(ctx context.Context)) (started bool, stopped context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false, c.stoppedCtx()
	}
	if !c.opened {
		return false, nil
	}
	ctx := c.runCtx
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(ctx)
	}()
	return true, nil
}

// stoppedCtx is the cancelled context jobs run with after Close. c.mu is held.
func (c *SerialConnector) stoppedCtx() context.Context {
	if c.runCtx != nil {
		return c.runCtx // cancelled by Close
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// Close stops every device, closes the ports, waits for the goroutines, and tells the
// gateway the devices are gone. It is safe to call more than once.
func (c *SerialConnector) Close() error {
	c.close.Do(func() {
		c.mu.Lock()
		// From here on nothing adds to wg, so the Wait below waits for every
		// goroutine the connector started.
		c.closed = true
		c.stopped.Store(true)
		opened, cancel := c.opened, c.cancel
		c.mu.Unlock()
		if !opened {
			return
		}
		cancel()
		for _, d := range c.devices {
			d.shutdown()
		}
		// A writer still running drains its queue with the cancelled context (every
		// RPC gets "Connector is stopped") before it exits.
		c.wg.Wait()
		for _, d := range c.devices {
			c.gw.DelDevice(d.cfg.name)
		}
		c.log.Info("serial connector stopped")
	})
	return nil
}

// Name implements connector.Connector.
func (c *SerialConnector) Name() string { return c.name }

// Type implements connector.Connector.
func (c *SerialConnector) Type() string { return c.typ }

// ID implements connector.Connector.
func (c *SerialConnector) ID() string { return c.id }

// IsConnected reports whether the port of every device is open now.
func (c *SerialConnector) IsConnected() bool {
	if c.stopped.Load() {
		return false
	}
	for _, d := range c.devices {
		if !d.connected.Load() {
			return false
		}
	}
	return true
}

// IsStopped reports whether the connector is not running (Close called, or Open not yet).
func (c *SerialConnector) IsStopped() bool { return c.stopped.Load() }

// OnAttributesUpdate writes the "stringToDevice" of every attributeUpdates entry whose
// attribute is in the update. The writes are queued to the device's writer goroutine.
func (c *SerialConnector) OnAttributesUpdate(u connector.AttributeUpdate) {
	d := c.byName[u.Device]
	if d == nil {
		c.log.Error("attribute update for a device this connector does not have", "device", u.Device)
		return
	}
	d.onAttributes(u.Data)
}

// ServerSideRPC handles an RPC on the device's writer goroutine and answers it with
// Gateway.SendRPCReply.
func (c *SerialConnector) ServerSideRPC(r connector.RPCRequest) {
	d := c.byName[r.Device]
	if d == nil {
		c.log.Error("RPC for a device this connector does not have", "device", r.Device, "method", r.Method)
		c.replyAsync(r.Device, r.ID, errorReply("Device "+r.Device+" not found"))
		return
	}
	d.onRPC(r)
}

// replyAsync sends a reply from a goroutine the connector waits for on Close, so that
// the caller is not blocked by the platform's acknowledgement. Before Open and after
// Close, when no such goroutine may start, it replies on the caller's goroutine.
func (c *SerialConnector) replyAsync(device string, id int, content any) {
	if started, _ := c.spawn(func(context.Context) { c.reply(device, id, content) }); !started {
		c.reply(device, id, content)
	}
}

func (c *SerialConnector) reply(device string, id int, content any) {
	if err := c.gw.SendRPCReply(device, id, content); err != nil {
		c.log.Warn("cannot send RPC reply", "device", device, "id", id, "error", err)
	}
}

func errorReply(msg string) map[string]any {
	return map[string]any{"error": msg, "success": false}
}
