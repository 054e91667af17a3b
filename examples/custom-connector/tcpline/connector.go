// Package tcpline is a TCP line-protocol connector for iotgw (type "tcpline", class
// "TCPLineConnector") with its converters (TCPLineUplinkConverter,
// TCPLineDownlinkConverter). It is the worked example of docs/custom-connector.md: a
// connector compiled into a custom gateway binary through the public connector package.
//
// For each configured device the connector keeps one TCP connection to host:port
// (reconnecting with backoff from 1 s to 30 s), reads the lines the device sends
// ("ts=1700000000000;temp=21.5;burner=on"), converts each with the device's uplink
// converter and hands the result to Gateway.SendToStorage. Attribute updates and RPCs
// from the platform become lines written back on the same connection; an RPC with
// response waits for the next line that starts with a configured prefix.
//
// Each device has two goroutines: a reader that owns the connection's life (dial,
// read, redial) and a writer that runs attribute updates and RPCs one at a time, so
// that an RPC waiting for its answer never holds up the device's data.
package tcpline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/iotgw/iotgw/connector"
)

// Type and class names in tb_gateway.json.
const (
	Type  = "tcpline"
	Class = "TCPLineConnector"
)

func init() {
	connector.Register(Type, Class, New)
	connector.RegisterUplink(defaultUplinkClass, NewUplinkConverter)
	connector.RegisterDownlink(defaultDownlinkClass, NewDownlinkConverter)
}

// TCPLineConnector talks to TCP line-protocol devices. It implements
// connector.Connector.
type TCPLineConnector struct {
	gw      connector.Gateway
	name    string
	typ     string
	id      string
	log     *slog.Logger
	devices []*device
	byName  map[string]*device

	mu      sync.Mutex // guards opened, cancel
	opened  bool
	cancel  context.CancelFunc
	stopped atomic.Bool
	close   sync.Once
	wg      sync.WaitGroup // every goroutine the connector starts
}

// New is the connector's Factory. It validates the connector file and makes every
// device's converters; it dials nothing and starts no goroutine, so that
// `iotgw check` can call it.
func New(gw connector.Gateway, cfg connector.Config) (connector.Connector, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	where := cfg.Path
	if where == "" {
		where = "tcpline connector configuration"
	}
	conf, err := parseConfig(cfg.Raw, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	convs := cfg.Converters
	if convs == nil {
		convs = connector.BuiltinConverters{Logger: log}
	}
	c := &TCPLineConnector{gw: gw, name: firstOf(cfg.Name, conf.name), typ: firstOf(cfg.Type, Type),
		id: cfg.ID, log: log, byName: make(map[string]*device, len(conf.devices))}
	c.stopped.Store(true)
	for _, dc := range conf.devices {
		up, err := convs.Uplink(dc.uplinkClass, dc.raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", where, dc.path, err)
		}
		down, err := convs.Downlink(dc.downlinkClass, dc.raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", where, dc.path, err)
		}
		d := newDevice(c, dc, up, down)
		c.devices = append(c.devices, d)
		c.byName[dc.name] = d
	}
	return c, nil
}

// Open starts every device's reader and writer and returns at once: connections are
// made (and remade) in the background, so a device that is down does not hold up the
// gateway. The gateway calls it once; ctx only carries values.
func (c *TCPLineConnector) Open(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opened {
		return errors.New("tcpline connector: Open called twice")
	}
	c.opened = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.stopped.Store(false)
	for _, d := range c.devices {
		c.wg.Add(2)
		go func() { defer c.wg.Done(); d.readLoop(runCtx) }()
		go func() { defer c.wg.Done(); d.writeLoop(runCtx) }()
	}
	c.log.Info("tcpline connector started", "devices", len(c.devices))
	return nil
}

// Close stops the devices, closes their connections, waits for every goroutine and
// tells the gateway the devices are gone. It is safe to call more than once.
func (c *TCPLineConnector) Close() error {
	c.close.Do(func() {
		c.stopped.Store(true)
		c.mu.Lock()
		opened, cancel := c.opened, c.cancel
		c.mu.Unlock()
		if !opened {
			return
		}
		cancel()
		for _, d := range c.devices {
			d.shutdown() // unblocks a reader waiting in Read
		}
		c.wg.Wait()
		for _, d := range c.devices {
			if d.announced.Load() {
				c.gw.DelDevice(d.cfg.name)
			}
		}
		c.log.Info("tcpline connector stopped")
	})
	return nil
}

// Name implements connector.Connector.
func (c *TCPLineConnector) Name() string { return c.name }

// Type implements connector.Connector.
func (c *TCPLineConnector) Type() string { return c.typ }

// ID implements connector.Connector.
func (c *TCPLineConnector) ID() string { return c.id }

// IsConnected reports whether every device's connection is up now.
func (c *TCPLineConnector) IsConnected() bool {
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

// IsStopped reports whether the connector is not running (Close called, or Open not
// yet).
func (c *TCPLineConnector) IsStopped() bool { return c.stopped.Load() }

// OnAttributesUpdate queues one line per updated attribute to the device's writer:
// the attribute's own attributeUpdates entry, else the device's attributeTemplate.
// It never blocks: the gateway calls it from its per-device downlink worker.
func (c *TCPLineConnector) OnAttributesUpdate(u connector.AttributeUpdate) {
	d := c.byName[u.Device]
	if d == nil {
		c.log.Error("attribute update for a device this connector does not have", "device", u.Device)
		return
	}
	d.onAttributes(u.Data)
}

// ServerSideRPC handles an RPC. A device's RPC is queued to that device's writer,
// which answers with Gateway.SendRPCReply. A connector RPC ("tcpline_<method>" sent
// to the gateway itself) comes with Device "" and is answered here, with
// SendRPCReply("", id, ...).
func (c *TCPLineConnector) ServerSideRPC(r connector.RPCRequest) {
	if r.Device == "" {
		c.reply("", r.ID, c.connectorRPC(r))
		return
	}
	d := c.byName[r.Device]
	if d == nil {
		c.log.Error("RPC for a device this connector does not have", "device", r.Device, "method", r.Method)
		c.reply(r.Device, r.ID, errorReply("Device "+r.Device+" not found"))
		return
	}
	d.onRPC(r)
}

// connectorRPC answers the connector's own methods:
// "devices" → {"result":{"NAME":{"address":"host:port","connected":true}},"success":true}.
func (c *TCPLineConnector) connectorRPC(r connector.RPCRequest) map[string]any {
	switch r.Method {
	case "devices":
		out := make(map[string]any, len(c.devices))
		for _, d := range c.devices {
			out[d.cfg.name] = map[string]any{"address": d.cfg.address, "connected": d.connected.Load()}
		}
		return map[string]any{"result": out, "success": true}
	}
	return errorReply("Method " + Type + "_" + r.Method + " not found")
}

// reply answers an RPC. The gateway's worker for the device waits for this reply
// anyway (RPCs to one device run one at a time), so replying on the caller's
// goroutine holds up nothing else.
func (c *TCPLineConnector) reply(device string, id int, content any) {
	if err := c.gw.SendRPCReply(device, id, content); err != nil {
		c.log.Warn("cannot send RPC reply", "device", device, "id", id, "error", err)
	}
}

func errorReply(msg string) map[string]any {
	return map[string]any{"error": msg, "success": false}
}
