package devices

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"unicode/utf16"
	"unicode/utf8"
)

// FileName is the registry file's name, beside tb_gateway.json.
const FileName = "connected_devices.json"

// Device is one saved device.
type Device struct {
	// Name is the device name the connector uses (the file's key).
	Name string
	// Type is the device type ("default" when unknown).
	Type string
	// ConnectorName and ConnectorID name the connector that owns the device.
	ConnectorName, ConnectorID string
	// Renamed is the device's name on the platform when the platform renamed it,
	// "" otherwise.
	Renamed string
}

// PlatformName is the name the device has on the platform.
func (d Device) PlatformName() string {
	if d.Renamed != "" {
		return d.Renamed
	}
	return d.Name
}

// Load reads a connected_devices.json file in any of the shapes the Python
// gateway wrote. A missing or empty file gives no devices and no error. Entries
// that cannot be read are skipped and described in skipped (file and key); err is
// for an unreadable file or a file that is not a JSON object. Devices are sorted
// by name.
func Load(path string) (devs []Device, skipped []error, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("device registry: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, nil, fmt.Errorf("%s: expected a JSON object of devices: %w", path, err)
	}
	for name, raw := range top {
		d, err := decodeEntry(name, raw)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("%s: %q: %w", path, name, err))
			continue
		}
		devs = append(devs, d)
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].Name < devs[j].Name })
	sort.Slice(skipped, func(i, j int) bool { return skipped[i].Error() < skipped[j].Error() })
	return devs, skipped, nil
}

func decodeEntry(name string, raw json.RawMessage) (Device, error) {
	d := Device{Name: name}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return d, errors.New("empty entry")
	}
	switch raw[0] {
	case '{': // 3.7+: {"connectorName","deviceType","connectorId","renaming"}
		var e struct {
			ConnectorName *string `json:"connectorName"`
			DeviceType    *string `json:"deviceType"`
			ConnectorID   *string `json:"connectorId"`
			Renaming      *string `json:"renaming"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return d, fmt.Errorf("expected {connectorName, deviceType, connectorId, renaming}: %w", err)
		}
		if e.ConnectorName == nil && e.ConnectorID == nil {
			return d, errors.New("neither connectorName nor connectorId")
		}
		d.ConnectorName = deref(e.ConnectorName)
		d.ConnectorID = deref(e.ConnectorID)
		d.Type = deref(e.DeviceType)
		d.Renamed = deref(e.Renaming)
	case '[': // 3.0–3.6: [connector name, device type, renamed name?]
		var l []*string
		if err := json.Unmarshal(raw, &l); err != nil {
			return d, fmt.Errorf("expected [connector name, device type, renamed name]: %w", err)
		}
		if len(l) < 1 || l[0] == nil {
			return d, errors.New("no connector name")
		}
		d.ConnectorName = *l[0]
		if len(l) > 1 {
			d.Type = deref(l[1])
		}
		if len(l) > 2 {
			d.Renamed = deref(l[2])
		}
	case '"': // 2.x: "connector name"
		if err := json.Unmarshal(raw, &d.ConnectorName); err != nil {
			return d, err
		}
	default:
		return d, fmt.Errorf("expected an object, got %s", raw)
	}
	if d.Type == "" {
		d.Type = "default"
	}
	if d.Renamed == d.Name {
		d.Renamed = ""
	}
	return d, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Encode returns the file content for devs, byte for byte what the Python
// gateway 3.8 writes: json.dumps(indent=2, sort_keys=True), no final newline.
func Encode(devs []Device) []byte {
	if len(devs) == 0 {
		return []byte("{}")
	}
	sorted := append([]Device(nil), devs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	b := make([]byte, 0, 128*len(sorted))
	b = append(b, "{\n"...)
	for i, d := range sorted {
		if i > 0 {
			b = append(b, ",\n"...)
		}
		b = append(b, "  "...)
		b = appendPyString(b, d.Name)
		b = append(b, ": {\n    \"connectorId\": "...)
		b = appendPyString(b, d.ConnectorID)
		b = append(b, ",\n    \"connectorName\": "...)
		b = appendPyString(b, d.ConnectorName)
		b = append(b, ",\n    \"deviceType\": "...)
		b = appendPyString(b, d.Type)
		b = append(b, ",\n    \"renaming\": "...)
		if d.Renamed == "" {
			b = append(b, "null"...)
		} else {
			b = appendPyString(b, d.Renamed)
		}
		b = append(b, "\n  }"...)
	}
	return append(b, "\n}"...)
}

// appendPyString writes s as Python's json.dumps does with ensure_ascii=True:
// \" \\ \n \r \t \b \f, other control characters, DEL and every non-ASCII character
// as \uXXXX (UTF-16 surrogate pairs above U+FFFF). Invalid UTF-8 becomes U+FFFD.
func appendPyString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u4 := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				if c < 0x20 || c == 0x7f { // Python escapes all but ' '..'~'
					b = u4(b, rune(c))
				} else {
					b = append(b, c)
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			b = u4(u4(b, r1), r2)
			continue
		}
		b = u4(b, r)
	}
	return append(b, '"')
}

// Save writes devs to path atomically: a temporary file in the same folder,
// fsync, rename, fsync of the folder.
func Save(path string, devs []Device) error {
	return writeAtomic(path, Encode(devs))
}

func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("device registry: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("device registry: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("device registry: write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("device registry: sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("device registry: close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("device registry: %w", err)
	}
	// The rename is durable once the folder is synced.
	d, derr := os.Open(dir)
	if derr != nil {
		return fmt.Errorf("device registry: %w", derr)
	}
	defer d.Close()
	if derr = d.Sync(); derr != nil {
		return fmt.Errorf("device registry: sync %s: %w", dir, derr)
	}
	return nil
}
