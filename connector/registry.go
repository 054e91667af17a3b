package connector

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// UplinkFactory makes an uplink converter for one device from the device's JSON
// object in the connector file. It validates the configuration once, so that
// Convert does no lookups by key.
type UplinkFactory func(deviceConfig []byte, log *slog.Logger) (UplinkConverter, error)

// DownlinkFactory makes a downlink converter for one device.
type DownlinkFactory func(deviceConfig []byte, log *slog.Logger) (DownlinkConverter, error)

type key struct{ typ, class string }

var registry = struct {
	sync.RWMutex
	connectors map[key]Factory
	defaults   map[string]string // type → class registered first
	uplinks    map[string]UplinkFactory
	downlinks  map[string]DownlinkFactory
}{
	connectors: map[key]Factory{},
	defaults:   map[string]string{},
	uplinks:    map[string]UplinkFactory{},
	downlinks:  map[string]DownlinkFactory{},
}

// Register makes a connector available under its type and class, the "type" and
// "class" of a connector entry in tb_gateway.json. The first class registered for a
// type is that type's default, used when an entry names no class. Call it from init();
// it panics on an empty name or a duplicate, as those are programming errors.
func Register(connectorType, class string, f Factory) {
	if connectorType == "" || class == "" || f == nil {
		panic("connector: Register needs a type, a class and a factory")
	}
	registry.Lock()
	defer registry.Unlock()
	k := key{connectorType, class}
	if _, dup := registry.connectors[k]; dup {
		panic(fmt.Sprintf("connector: Register called twice for type %q class %q", connectorType, class))
	}
	registry.connectors[k] = f
	if _, ok := registry.defaults[connectorType]; !ok {
		registry.defaults[connectorType] = class
	}
}

// Lookup returns the factory registered for type and class. With an empty class it
// returns the type's default. exact is false when class was empty.
func Lookup(connectorType, class string) (f Factory, ok bool) {
	registry.RLock()
	defer registry.RUnlock()
	if class == "" {
		class = registry.defaults[connectorType]
	}
	f, ok = registry.connectors[key{connectorType, class}]
	return f, ok
}

// DefaultClass returns the class registered first for a type, and whether the type
// is known at all.
func DefaultClass(connectorType string) (string, bool) {
	registry.RLock()
	defer registry.RUnlock()
	c, ok := registry.defaults[connectorType]
	return c, ok
}

// Types lists the registered connector types, sorted.
func Types() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.defaults))
	for t := range registry.defaults {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// RegisterUplink makes an uplink converter class available by name (the device key
// "converter" or "uplink_converter"). It panics on an empty name or a duplicate.
func RegisterUplink(class string, f UplinkFactory) {
	if class == "" || f == nil {
		panic("connector: RegisterUplink needs a class and a factory")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.uplinks[class]; dup {
		panic(fmt.Sprintf("connector: RegisterUplink called twice for %q", class))
	}
	registry.uplinks[class] = f
}

// RegisterDownlink makes a downlink converter class available by name (the device
// key "downlink_converter"). It panics on an empty name or a duplicate.
func RegisterDownlink(class string, f DownlinkFactory) {
	if class == "" || f == nil {
		panic("connector: RegisterDownlink needs a class and a factory")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.downlinks[class]; dup {
		panic(fmt.Sprintf("connector: RegisterDownlink called twice for %q", class))
	}
	registry.downlinks[class] = f
}

// LookupUplink returns the built-in uplink converter factory registered as class.
func LookupUplink(class string) (UplinkFactory, bool) {
	registry.RLock()
	defer registry.RUnlock()
	f, ok := registry.uplinks[class]
	return f, ok
}

// LookupDownlink returns the built-in downlink converter factory registered as class.
func LookupDownlink(class string) (DownlinkFactory, bool) {
	registry.RLock()
	defer registry.RUnlock()
	f, ok := registry.downlinks[class]
	return f, ok
}

// BuiltinConverters is a Converters that knows only the registered built-in classes.
// The gateway wraps it with the extensions folder; connector tests can use it alone.
type BuiltinConverters struct {
	Logger *slog.Logger
}

// Uplink implements Converters.
func (b BuiltinConverters) Uplink(class string, deviceConfig []byte) (UplinkConverter, error) {
	f, ok := LookupUplink(class)
	if !ok {
		return nil, fmt.Errorf("uplink converter %q not found: not built in and not in the extensions folder", class)
	}
	return f(deviceConfig, b.logger())
}

// Downlink implements Converters.
func (b BuiltinConverters) Downlink(class string, deviceConfig []byte) (DownlinkConverter, error) {
	f, ok := LookupDownlink(class)
	if !ok {
		return nil, fmt.Errorf("downlink converter %q not found: not built in and not in the extensions folder", class)
	}
	return f(deviceConfig, b.logger())
}

func (b BuiltinConverters) logger() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.Default()
}
