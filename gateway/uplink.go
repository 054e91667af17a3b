package gateway

import (
	"fmt"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// SendToStorage implements connector.Gateway. In order: device filtering, the
// inactivity tracker, the report strategies (connector level from tb_gateway.json,
// device and datapoint levels on the datapoints, gateway level), then storage, with
// a connect record before a device's first data and the platform's name for a
// renamed device. It blocks while storage applies back-pressure.
//
// With every strategy ON_RECEIVED and no rename, it allocates nothing but the
// stored record.
func (g *Gateway) SendToStorage(connectorName, connectorID string, data *connector.ConvertedData) error {
	if data == nil {
		return nil
	}
	if data.DeviceName == "" {
		g.stats.DroppedInvalid.Add(1)
		return fmt.Errorf("connector %q: converted data without a device name", connectorName)
	}
	g.stats.MessagesReceived.Add(1)
	nvalues := countValues(data)
	g.stats.ValuesReceived.Add(uint64(nvalues))

	if nvalues == 0 {
		g.countConnector(connectorName, nvalues)
		return nil
	}
	if !g.allowed(connectorName, data.DeviceName) {
		g.countConnector(connectorName, nvalues)
		return nil
	}
	if g.activity != nil {
		// An inactive device becomes active here (onActive), before the device
		// is looked up below.
		g.activity.Seen(data.DeviceName)
	}
	// One read-locked section finds the connector and the device.
	g.mu.RLock()
	s := g.connectors[connectorName]
	var connStrategy *connector.ReportStrategy
	if s != nil {
		connStrategy = s.entry.ReportStrategy
	}
	var pname string
	if d := g.devices[data.DeviceName]; d != nil && d.announced {
		pname = d.pname
	}
	g.mu.RUnlock()
	if s != nil {
		s.msgs.Add(1)
		s.values.Add(uint64(nvalues))
	}
	out := g.report.Filter(connStrategy, nil, data)
	if out != data {
		kept := 0
		if out != nil {
			kept = countValues(out)
		}
		g.stats.ValuesSuppressed.Add(uint64(nvalues - kept))
		if out == nil {
			return nil
		}
	}
	connectType := ""
	if pname == "" {
		pname, connectType = g.needsConnect(connectorName, out.DeviceName, out.DeviceType)
	}
	return g.storeData(out, pname, connectType)
}

// countConnector counts data of a connector that goes no further.
func (g *Gateway) countConnector(connectorName string, nvalues int) {
	g.mu.RLock()
	s := g.connectors[connectorName]
	g.mu.RUnlock()
	if s != nil {
		s.msgs.Add(1)
		s.values.Add(uint64(nvalues))
	}
}

// storeData stores data under the platform name pname, preceded by a connect
// record when connectType is not empty.
func (g *Gateway) storeData(data *connector.ConvertedData, pname, connectType string) error {
	buf := g.encPool.Get().(*encodeBuf)
	defer g.encPool.Put(buf)
	rec := buf.rec[:0]
	if connectType != "" {
		rec = appendDeviceRecord(rec, recConnect, pname, connectType)
		if err := g.put(rec); err != nil {
			buf.rec = rec
			return err
		}
		rec = rec[:0]
	}
	d := data
	var renamed connector.ConvertedData
	if pname != data.DeviceName {
		renamed = *data
		renamed.DeviceName = pname
		d = &renamed
	}
	buf.rec = rec
	return g.storeSized(d, buf, time.Now().UnixMilli())
}

// recordOverhead is what a message adds around one record's fragments: braces,
// the quoted device name's separators and the MQTT topic and header.
const recordOverhead = 64

// storeSized stores d as one record when it fits in a message of the platform's
// payload limit, and else splits it (telemetry from attributes, entries in halves,
// one entry's values in halves under the same ts) so that no record is larger than
// what the broker accepts: such a record would be refused, retried forever and hold
// back every record behind it. A single value that cannot fit is dropped and counted.
func (g *Gateway) storeSized(d *connector.ConvertedData, buf *encodeBuf, now int64) error {
	var ok bool
	buf.rec, buf.scratch, ok = appendRecord(buf.rec[:0], d, now, buf.scratch)
	if !ok {
		return nil
	}
	if len(buf.rec)+len(d.DeviceName)+recordOverhead <= g.maxPayload() {
		return g.put(buf.rec)
	}
	a, b, ok := halve(d, now)
	if !ok {
		g.stats.DroppedInvalid.Add(1)
		g.log.Error("a value larger than the platform's payload limit was dropped",
			"device", d.DeviceName, "bytes", len(buf.rec), "maxPayloadSizeBytes", g.maxPayload())
		return nil
	}
	if err := g.storeSized(a, buf, now); err != nil {
		return err
	}
	return g.storeSized(b, buf, now)
}

// halve splits d in two non-empty parts, or reports false for a single value.
// Entries without a timestamp get now, so that both parts keep the same time.
func halve(d *connector.ConvertedData, now int64) (a, b *connector.ConvertedData, ok bool) {
	a = &connector.ConvertedData{DeviceName: d.DeviceName, DeviceType: d.DeviceType}
	b = &connector.ConvertedData{DeviceName: d.DeviceName, DeviceType: d.DeviceType}
	tel := make([]connector.TelemetryEntry, 0, len(d.Telemetry))
	for _, e := range d.Telemetry {
		if len(e.Values) == 0 {
			continue
		}
		if e.TS == 0 {
			e.TS = now
		}
		tel = append(tel, e)
	}
	switch {
	case len(tel) > 0 && len(d.Attributes) > 0:
		a.Telemetry, b.Attributes = tel, d.Attributes
	case len(tel) > 1:
		a.Telemetry, b.Telemetry = tel[:len(tel)/2], tel[len(tel)/2:]
	case len(tel) == 1 && len(tel[0].Values) > 1:
		v := tel[0].Values
		a.Telemetry = []connector.TelemetryEntry{{TS: tel[0].TS, Values: v[:len(v)/2]}}
		b.Telemetry = []connector.TelemetryEntry{{TS: tel[0].TS, Values: v[len(v)/2:]}}
	case len(tel) == 0 && len(d.Attributes) > 1:
		at := d.Attributes
		a.Attributes, b.Attributes = at[:len(at)/2], at[len(at)/2:]
	default:
		return nil, nil, false
	}
	return a, b, true
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

// needsConnect registers the device under its connector and returns its platform
// name, and its type when a connect record must precede its data (first data in
// this run, first data after a rename or after inactivity).
func (g *Gateway) needsConnect(connectorName, name, typ string) (pname, connectType string) {
	g.mu.RLock()
	d, ok := g.devices[name]
	if ok && d.announced {
		pname = d.pname
		g.mu.RUnlock()
		return pname, ""
	}
	g.mu.RUnlock()
	g.mu.Lock()
	d, ok = g.devices[name]
	if !ok {
		d = &device{name: name, pname: g.reg.PlatformName(name), typ: deviceTypeOr(typ)}
		g.devices[name] = d
	}
	if d.conn == nil {
		d.conn = g.connectors[connectorName]
	}
	pname = d.pname
	if d.announced {
		g.mu.Unlock()
		return pname, ""
	}
	d.announced = true
	s, dtyp := d.conn, d.typ
	g.mu.Unlock()
	if !ok {
		g.register(name, dtyp, s)
	}
	g.requestSync(name)
	return pname, dtyp
}

// AddDevice implements connector.Gateway.
func (g *Gateway) AddDevice(name, deviceType string, c connector.Connector) {
	if name == "" {
		return
	}
	if g.activity != nil {
		g.activity.Seen(name)
	}
	g.mu.Lock()
	d, ok := g.devices[name]
	if !ok {
		d = &device{name: name, pname: g.reg.PlatformName(name), typ: deviceTypeOr(deviceType)}
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
	typ, pname, s := d.typ, d.pname, d.conn
	g.mu.Unlock()
	g.register(name, typ, s)
	if first {
		if err := g.put(appendDeviceRecord(nil, recConnect, pname, typ)); err != nil {
			g.log.Warn("device connect not stored", "device", pname, "err", err)
		}
		g.requestSync(name)
	}
}

// DelDevice implements connector.Gateway: the platform is told the device
// disconnected and the gateway forgets it (connected_devices.json included). While
// the gateway stops, connectors closing their devices only disconnect them: the
// registry keeps them for the next start.
func (g *Gateway) DelDevice(name string) {
	g.mu.RLock()
	d, ok := g.devices[name]
	var pname, typ string
	if ok {
		pname, typ = d.pname, d.typ
	}
	g.mu.RUnlock()
	if !ok {
		return
	}
	if !g.stopping.Load() {
		g.reg.Delete(name)
		g.forget(name)
	}
	if err := g.put(appendDeviceRecord(nil, recDisconnect, pname, typ)); err != nil {
		g.log.Debug("device disconnect not stored", "device", pname, "err", err)
	}
}

// knownDevices lists the devices to re-announce after a (re)connect to the
// platform, by platform name: every known device except the inactive ones (they
// were told disconnected and connect again with their next data). Each of them has
// its shared attributes synced. Only the publisher calls it, once per connection,
// before it sends anything else on that connection.
func (g *Gateway) knownDevices() [][2]string {
	g.mu.RLock()
	out := make([][2]string, 0, len(g.devices))
	names := make([]string, 0, len(g.devices))
	for _, d := range g.devices {
		if d.inactive {
			continue
		}
		out = append(out, [2]string{d.pname, d.typ})
		names = append(names, d.name)
	}
	g.mu.RUnlock()
	for _, n := range names {
		g.requestSync(n)
	}
	return out
}

// platformName returns the platform's name for a device the connector calls name.
func (g *Gateway) platformName(name string) string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if d := g.devices[name]; d != nil {
		return d.pname
	}
	return g.reg.PlatformName(name)
}
