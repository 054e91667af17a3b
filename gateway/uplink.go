package gateway

import (
	"fmt"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// SendToStorage implements connector.Gateway: it announces the device on its first
// data and puts the data into storage. It blocks while storage applies back-pressure.
func (g *Gateway) SendToStorage(connectorName, connectorID string, data *connector.ConvertedData) error {
	if data == nil {
		return nil
	}
	if data.DeviceName == "" {
		g.stats.DroppedInvalid.Add(1)
		return fmt.Errorf("connector %q: converted data without a device name", connectorName)
	}
	g.stats.MessagesReceived.Add(1)
	nvalues := len(data.Attributes)
	for i := range data.Telemetry {
		nvalues += len(data.Telemetry[i].Values)
	}
	g.stats.ValuesReceived.Add(uint64(nvalues))
	if nvalues == 0 {
		return nil
	}

	buf := g.encPool.Get().(*encodeBuf)
	defer g.encPool.Put(buf)
	rec := buf.rec[:0]
	if g.needsConnect(connectorName, data.DeviceName, data.DeviceType) {
		rec = appendDeviceRecord(rec, recConnect, data.DeviceName, deviceTypeOr(data.DeviceType))
		if err := g.put(rec); err != nil {
			return err
		}
		rec = rec[:0]
	}
	var ok bool
	rec, buf.scratch, ok = appendRecord(rec, data, time.Now().UnixMilli(), buf.scratch)
	buf.rec = rec
	if !ok {
		return nil
	}
	return g.put(rec)
}

// put copies rec (storage may keep the slice) and stores it.
func (g *Gateway) put(rec []byte) error {
	cp := make([]byte, len(rec))
	copy(cp, rec)
	// Puts go on while the gateway stops, so that connectors flush into durable
	// storage; they give up when the gateway's life ends.
	return g.store.Put(g.life, cp)
}

func deviceTypeOr(t string) string {
	if t == "" {
		return "default"
	}
	return t
}

// needsConnect registers the device under its connector and reports whether a
// connect record must precede its data (first data in this run).
func (g *Gateway) needsConnect(connectorName, name, typ string) bool {
	g.mu.RLock()
	d, ok := g.devices[name]
	announced := ok && d.announced
	g.mu.RUnlock()
	if announced {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	d, ok = g.devices[name]
	if !ok {
		d = &device{name: name, typ: deviceTypeOr(typ)}
		g.devices[name] = d
	}
	if d.conn == nil {
		d.conn = g.connectors[connectorName]
	}
	if d.announced {
		return false
	}
	d.announced = true
	return true
}

// AddDevice implements connector.Gateway.
func (g *Gateway) AddDevice(name, deviceType string, c connector.Connector) {
	if name == "" {
		return
	}
	g.mu.Lock()
	d, ok := g.devices[name]
	if !ok {
		d = &device{name: name, typ: deviceTypeOr(deviceType)}
		g.devices[name] = d
	}
	if deviceType != "" {
		d.typ = deviceType
	}
	if c != nil {
		if s, ok := g.connectors[c.Name()]; ok && s.conn == c {
			d.conn = s
		} else {
			d.conn = &slot{conn: c}
		}
	}
	first := !d.announced
	d.announced = true
	typ := d.typ
	g.mu.Unlock()
	if first {
		if err := g.put(appendDeviceRecord(nil, recConnect, name, typ)); err != nil {
			g.log.Warn("device connect not stored", "device", name, "err", err)
		}
	}
}

// DelDevice implements connector.Gateway.
func (g *Gateway) DelDevice(name string) {
	g.mu.Lock()
	d, ok := g.devices[name]
	if ok {
		delete(g.devices, name)
	}
	g.mu.Unlock()
	if !ok {
		return
	}
	if err := g.put(appendDeviceRecord(nil, recDisconnect, name, d.typ)); err != nil {
		g.log.Debug("device disconnect not stored", "device", name, "err", err)
	}
}

// knownDevices lists the devices to re-announce after a reconnect.
func (g *Gateway) knownDevices() [][2]string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([][2]string, 0, len(g.devices))
	for _, d := range g.devices {
		out = append(out, [2]string{d.name, d.typ})
	}
	return out
}
