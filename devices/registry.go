package devices

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Registry holds the gateway's devices and the platform's renames. It is safe
// for concurrent use.
type Registry struct {
	mu         sync.RWMutex
	devs       map[string]*Device // by connector-side name
	byPlatform map[string]string  // renamed platform name → connector-side name
	version    uint64             // bumped on every change, for Store
	onChange   func()
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{devs: map[string]*Device{}, byPlatform: map[string]string{}}
}

// changed records a change; r.mu is held for writing.
func (r *Registry) changed() {
	r.version++
	if r.onChange != nil {
		r.onChange()
	}
}

// Add records a device (new, or changed type or connector) and reports whether
// anything changed. A rename recorded for the device is kept unless d sets one.
// A device without a type gets "default".
func (r *Registry) Add(d Device) bool {
	if d.Type == "" {
		d.Type = "default"
	}
	if d.Renamed == d.Name {
		d.Renamed = ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.devs[d.Name]
	if old != nil {
		if d.Renamed == "" {
			d.Renamed = old.Renamed
		}
		if *old == d {
			return false
		}
		if old.Renamed != "" && old.Renamed != d.Renamed {
			delete(r.byPlatform, old.Renamed)
		}
	}
	if d.Renamed != "" {
		r.byPlatform[d.Renamed] = d.Name
	}
	r.devs[d.Name] = &d
	r.changed()
	return true
}

// Get returns the device named name by its connector.
func (r *Registry) Get(name string) (Device, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if d := r.devs[name]; d != nil {
		return *d, true
	}
	return Device{}, false
}

// Lookup returns the device the platform calls platformName (downlink routing): a
// renamed device by its new name, else a device by its own name unless it was
// renamed away.
func (r *Registry) Lookup(platformName string) (Device, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d := r.lookup(platformName)
	if d == nil {
		return Device{}, false
	}
	return *d, true
}

func (r *Registry) lookup(platformName string) *Device {
	if n, ok := r.byPlatform[platformName]; ok {
		return r.devs[n]
	}
	if d := r.devs[platformName]; d != nil && d.Renamed == "" {
		return d
	}
	return nil
}

// PlatformName returns the name under which data of the device the connector
// calls name goes to the platform: its new name when the platform renamed it,
// name otherwise.
func (r *Registry) PlatformName(name string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if d := r.devs[name]; d != nil && d.Renamed != "" {
		return d.Renamed
	}
	return name
}

// Rename applies a platform rename from oldName to newName (platform names) and
// returns the device. oldName may itself be the result of an earlier rename
// (renames chain). It reports false when no device is known as oldName.
func (r *Registry) Rename(oldName, newName string) (Device, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.lookup(oldName)
	if d == nil || newName == "" {
		return Device{}, false
	}
	if d.PlatformName() == newName {
		return *d, true
	}
	if d.Renamed != "" {
		delete(r.byPlatform, d.Renamed)
	}
	d.Renamed = newName
	if newName == d.Name {
		d.Renamed = "" // renamed back to the connector's name
	} else {
		r.byPlatform[newName] = d.Name
	}
	r.changed()
	return *d, true
}

// Delete forgets the device the platform calls name (or, failing that, the device
// the connector calls name) and returns it.
func (r *Registry) Delete(name string) (Device, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.lookup(name)
	if d == nil {
		d = r.devs[name]
	}
	if d == nil {
		return Device{}, false
	}
	if d.Renamed != "" {
		delete(r.byPlatform, d.Renamed)
	}
	delete(r.devs, d.Name)
	r.changed()
	return *d, true
}

// List returns every device, sorted by name.
func (r *Registry) List() []Device {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Device, 0, len(r.devs))
	for _, d := range r.devs {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Len returns the number of devices.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.devs)
}

// snapshot returns the devices and the version they belong to.
func (r *Registry) snapshot() ([]Device, uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Device, 0, len(r.devs))
	for _, d := range r.devs {
		out = append(out, *d)
	}
	return out, r.version
}

// ParseRenamed decodes the params of the platform's "gateway_device_renamed" RPC,
// {"<old name>": "<new name>"}, as encoding/json decodes them (a map, or raw JSON).
func ParseRenamed(params any) (oldName, newName string, err error) {
	m, err := asObject(params)
	if err != nil {
		return "", "", fmt.Errorf("gateway_device_renamed params: %w", err)
	}
	if len(m) != 1 {
		return "", "", fmt.Errorf("gateway_device_renamed params: expected one {\"old name\": \"new name\"} pair, got %d", len(m))
	}
	for k, v := range m {
		s, ok := v.(string)
		if !ok || s == "" || k == "" {
			return "", "", fmt.Errorf("gateway_device_renamed params: expected {\"old name\": \"new name\"}, got {%q: %v}", k, v)
		}
		oldName, newName = k, s
	}
	return oldName, newName, nil
}

// ParseDeleted decodes the params of the platform's "gateway_device_deleted" RPC:
// the device name as a JSON string.
func ParseDeleted(params any) (string, error) {
	if raw, ok := params.(json.RawMessage); ok {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("gateway_device_deleted params: expected a device name: %w", err)
		}
		params = s
	}
	s, ok := params.(string)
	if !ok || s == "" {
		return "", fmt.Errorf("gateway_device_deleted params: expected a device name, got %v", params)
	}
	return s, nil
}

func asObject(params any) (map[string]any, error) {
	switch p := params.(type) {
	case map[string]any:
		return p, nil
	case json.RawMessage:
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		return m, nil
	case []byte:
		return asObject(json.RawMessage(p))
	}
	return nil, errors.New("expected a JSON object")
}
