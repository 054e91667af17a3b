package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotgw/iotgw/activity"
	"github.com/iotgw/iotgw/connector"
	"github.com/iotgw/iotgw/devfilter"
	"github.com/iotgw/iotgw/devices"
	"github.com/iotgw/iotgw/report"
)

const (
	// syncQueueLen bounds the devices waiting for their shared attributes; past it
	// a sync is skipped (logged), as the next connect asks again.
	syncQueueLen = 1024
	// syncTimeout bounds one shared-attributes request on connect.
	syncTimeout = 10 * time.Second
)

// platform is the gateway's behaviour between the connectors and storage that
// tb_gateway.json's thingsboard section configures: report strategies, device
// filtering, inactivity, the device registry with the platform's renames, attribute
// requests and statistics.
type platform struct {
	report   *report.Engine
	filter   *devfilter.Filter // nil when deviceFiltering is off
	denied   sync.Map          // deniedKey → struct{}: a refused device is logged once
	activity *activity.Tracker // nil when checkDeviceInactivity is off
	reg      *devices.Registry
	regPath  string // connected_devices.json; "" when the config has no folder
	regStore *devices.Store

	attrSeq     atomic.Int64
	attrPending sync.Map    // request id (int64) → *attrWait
	syncQ       chan string // connector-side names whose shared attributes to fetch

	cpuMu   sync.Mutex
	cpuLast cpuSample

	// connected wakes the publisher after each connect to the platform, so that it
	// announces the devices on the new connection even when no data is flowing.
	connected chan struct{}
}

type deniedKey struct{ connector, device string }

// initPlatform builds the platform behaviours from the configuration and loads
// connected_devices.json. New calls it after the connectors exist.
func (g *Gateway) initPlatform() error {
	tb := g.cfg.Thingsboard
	now := g.opts.Now
	if now == nil {
		now = time.Now
	}
	g.report = report.New(tb.ReportStrategy, report.Options{Now: now, Emit: g.emitResend})
	if tb.DeviceFiltering.Enable {
		f, err := devfilter.Load(tb.DeviceFiltering.FilterFile)
		if err != nil {
			return fmt.Errorf("thingsboard.deviceFiltering: %w", err)
		}
		g.filter = f
	}
	if a := tb.CheckingDeviceActive; a.CheckDeviceInactivity {
		g.activity = activity.New(activity.Options{
			Timeout:     time.Duration(a.InactivityTimeoutSeconds) * time.Second,
			CheckPeriod: time.Duration(a.InactivityCheckPeriodSeconds) * time.Second,
			Now:         now,
			OnInactive:  g.onInactive,
			OnActive:    g.onActive,
		})
	}
	g.connected = make(chan struct{}, 1)
	g.reg = devices.NewRegistry()
	g.syncQ = make(chan string, syncQueueLen)
	if g.cfg.Dir != "" {
		g.regPath = filepath.Join(g.cfg.Dir, devices.FileName)
		g.loadDevices()
	}
	return nil
}

// loadDevices reads connected_devices.json: each saved device whose connector is
// still configured (matched by id, then by name, as Python does) is known again,
// routable to that connector and announced after every connect to the platform,
// without waiting for its data. The others are dropped.
func (g *Gateway) loadDevices() {
	devs, skipped, err := devices.Load(g.regPath)
	if err != nil {
		g.log.Error("saved devices not loaded; starting without them", "err", err)
		return
	}
	for _, e := range skipped {
		g.log.Warn("saved device skipped", "err", e)
	}
	for _, d := range devs {
		s := g.slotFor(d.ConnectorID, d.ConnectorName)
		if s == nil {
			g.log.Info("saved device dropped: its connector is no longer configured",
				"device", d.Name, "connector", d.ConnectorName, "connector_id", d.ConnectorID)
			continue
		}
		d.ConnectorName, d.ConnectorID = s.entry.Name, s.entry.ID
		g.reg.Add(d)
		g.devices[d.Name] = &device{name: d.Name, typ: d.Type, pname: d.PlatformName(), conn: s, announced: true}
		if g.activity != nil {
			g.activity.Seen(d.Name) // inactive after the timeout if it never sends
		}
	}
	if len(g.devices) > 0 {
		g.log.Info("saved devices loaded", "devices", len(g.devices), "file", g.regPath)
	}
}

// slotFor finds a configured connector by id, then by name. New runs it before
// anything else touches g.connectors.
func (g *Gateway) slotFor(id, name string) *slot {
	if id != "" {
		for _, s := range g.connectors {
			if s.entry.ID == id {
				return s
			}
		}
	}
	return g.connectors[name]
}

// runPlatform starts the goroutines of the platform behaviours; the returned
// channel is closed when ctx is done and they all stopped, and the registry file
// had its last write.
func (g *Gateway) runPlatform(ctx context.Context) <-chan struct{} {
	if g.regPath != "" {
		g.regStore = devices.OpenStore(g.regPath, g.reg, devices.StoreOptions{Logger: g.log.With("component", "devices")})
	}
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	run(g.report.Run)
	if g.activity != nil {
		run(g.activity.Run)
	}
	if st := g.cfg.Thingsboard.Statistics; st.Enable {
		run(func(ctx context.Context) { g.statsLoop(ctx, time.Duration(st.StatsSendPeriodInSeconds)*time.Second) })
	}
	if g.cfg.Thingsboard.SyncSharedAttributesOnConnect {
		run(g.syncLoop)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		wg.Wait()
		if g.regStore != nil {
			if err := g.regStore.Close(); err != nil {
				g.log.Error("saving connected devices", "file", g.regPath, "err", err)
			}
		}
	}()
	return done
}

// allowed applies device filtering; a refused device is logged once.
func (g *Gateway) allowed(connectorName, device string) bool {
	if g.filter == nil || g.filter.Allowed(connectorName, device) {
		return true
	}
	g.stats.DroppedFiltered.Add(1)
	if _, seen := g.denied.LoadOrStore(deniedKey{connectorName, device}, struct{}{}); !seen {
		g.log.Info("device refused by the device filter; its data is dropped", "connector", connectorName, "device", device)
	}
	return false
}

// emitResend stores a periodic re-send of the report strategies (from the
// engine's goroutine). A device that is inactive or gone gets none: the platform
// was told it disconnected.
func (g *Gateway) emitResend(d *connector.ConvertedData) {
	n := uint64(countValues(d))
	g.mu.RLock()
	dv := g.devices[d.DeviceName]
	ok := dv != nil && !dv.inactive
	pname := d.DeviceName
	if dv != nil {
		pname = dv.pname
	}
	g.mu.RUnlock()
	if !ok {
		g.stats.ValuesSuppressed.Add(n)
		return
	}
	g.stats.ValuesResent.Add(n)
	if err := g.storeData(d, pname, ""); err != nil {
		g.log.Debug("periodic re-send not stored", "device", pname, "err", err)
	}
}

func countValues(d *connector.ConvertedData) int {
	n := len(d.Attributes)
	for i := range d.Telemetry {
		n += len(d.Telemetry[i].Values)
	}
	return n
}

// onInactive runs with the tracker locked: the device is told disconnected to the
// platform, through storage so that it follows the device's data, and stays
// routable for downlink requests.
func (g *Gateway) onInactive(name string) {
	g.mu.Lock()
	d := g.devices[name]
	if d == nil || d.inactive {
		g.mu.Unlock()
		return
	}
	d.inactive = true
	pname, typ := d.pname, d.typ
	g.mu.Unlock()
	g.stats.Disconnects.Add(1)
	g.log.Info("device inactive: disconnected on the platform", "device", pname)
	if err := g.put(appendDeviceRecord(nil, recDisconnect, pname, typ)); err != nil {
		g.log.Debug("device disconnect not stored", "device", pname, "err", err)
	}
}

// onActive runs (tracker locked) inside the Seen of the data that woke the
// device: the same SendToStorage call then stores a connect record before it.
func (g *Gateway) onActive(name string) {
	g.mu.Lock()
	if d := g.devices[name]; d != nil {
		d.inactive = false
		d.announced = false
	}
	g.mu.Unlock()
	g.log.Info("device active again", "device", name)
}

// register records a device in the registry (persisted) with its connector.
func (g *Gateway) register(name, typ string, s *slot) {
	d := devices.Device{Name: name, Type: typ}
	if s != nil {
		g.mu.RLock()
		d.ConnectorName, d.ConnectorID = s.entry.Name, s.entry.ID
		g.mu.RUnlock()
		if d.ConnectorName == "" && s.conn != nil {
			d.ConnectorName, d.ConnectorID = s.conn.Name(), s.conn.ID()
		}
	}
	g.reg.Add(d)
}

// requestSync queues a device for the shared-attributes sync on connect.
func (g *Gateway) requestSync(name string) {
	if !g.cfg.Thingsboard.SyncSharedAttributesOnConnect {
		return
	}
	select {
	case g.syncQ <- name:
	default:
		g.log.Debug("shared attributes sync skipped: too many waiting", "device", name)
	}
}

// syncLoop asks the platform for the shared attributes of every device that
// (re)connects and hands them to its connector as an attribute update
// (syncDevicesSharedAttributesOnConnect).
func (g *Gateway) syncLoop(ctx context.Context) {
	for {
		var name string
		select {
		case <-ctx.Done():
			return
		case name = <-g.syncQ:
		}
		rctx, cancel := context.WithTimeout(ctx, syncTimeout)
		values, err := g.RequestAttributes(rctx, name, false, nil)
		cancel()
		if err != nil {
			g.log.Debug("shared attributes not synced", "device", name, "err", err)
			continue
		}
		if len(values) == 0 {
			continue
		}
		g.mu.RLock()
		d := g.devices[name]
		g.mu.RUnlock()
		if d == nil {
			continue
		}
		g.enqueueDevice(d, name, func(c connector.Connector, dev string) {
			c.OnAttributesUpdate(connector.AttributeUpdate{Device: dev, Data: values})
		})
	}
}

// rpcDeviceRenamed applies the platform's gateway_device_renamed RPC:
// {"<old name>": "<new name>"}. Data of the device goes out under the new name,
// downlink requests to the new name reach it under its connector's name.
func (g *Gateway) rpcDeviceRenamed(params json.RawMessage) map[string]any {
	if !g.cfg.Thingsboard.HandleDeviceRenaming {
		g.log.Info("device renamed on the platform; ignored (handleDeviceRenaming is off)", "params", string(params))
		return map[string]any{"success": false, "error": "handleDeviceRenaming is off"}
	}
	oldName, newName, err := devices.ParseRenamed(params)
	if err != nil {
		return map[string]any{"success": false, "error": err.Error()}
	}
	dev, ok := g.reg.Rename(oldName, newName)
	if !ok {
		return map[string]any{"success": false, "error": "Device " + oldName + " not found"}
	}
	g.mu.Lock()
	if d := g.devices[dev.Name]; d != nil {
		d.pname = dev.PlatformName()
		d.announced = false // the next data connects the new name
	}
	g.mu.Unlock()
	g.log.Info("device renamed on the platform", "device", dev.Name, "old", oldName, "new", newName)
	return map[string]any{"success": true}
}

// rpcDeviceDeleted applies the platform's gateway_device_deleted RPC ("<name>"):
// the gateway forgets the device; its next data creates it again.
func (g *Gateway) rpcDeviceDeleted(params json.RawMessage) map[string]any {
	name, err := devices.ParseDeleted(params)
	if err != nil {
		return map[string]any{"success": false, "error": err.Error()}
	}
	dev, ok := g.reg.Delete(name)
	if !ok {
		return map[string]any{"success": false, "error": "Device " + name + " not found"}
	}
	g.forget(dev.Name)
	g.log.Info("device deleted on the platform", "device", dev.Name, "platform_name", name)
	return map[string]any{"success": true}
}

// forget drops a device from routing, the inactivity tracker and the report
// strategy cache.
func (g *Gateway) forget(name string) {
	g.mu.Lock()
	delete(g.devices, name)
	g.mu.Unlock()
	if g.activity != nil {
		g.activity.Remove(name)
	}
	g.report.Forget(name)
}
