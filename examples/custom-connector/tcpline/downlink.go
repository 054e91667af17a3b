package tcpline

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/iotgw/iotgw/connector"
)

// DownlinkConverter is TCPLineDownlinkConverter: it turns a request from the platform
// into one line for the device.
//
//   - An RPC (cfg is the device's "serverSideRpc" entry, data the RPC's params) becomes
//     "method params-json\n", or "method\n" without params; the entry's "command"
//     replaces the method name on the wire.
//   - An attribute update (cfg is an "attributeUpdates" entry, data the new value)
//     becomes the entry's "stringToDevice" with ${attr}, ${value}, ${<attribute>},
//     ${deviceName} and ${deviceType} replaced.
type DownlinkConverter struct {
	deviceName, deviceType string
	log                    *slog.Logger
}

// NewDownlinkConverter makes the converter of one device from the device's JSON object
// in the connector file. It is the factory registered as "TCPLineDownlinkConverter".
func NewDownlinkConverter(deviceConfig []byte, log *slog.Logger) (connector.DownlinkConverter, error) {
	if log == nil {
		log = slog.Default()
	}
	var c uplinkConfig // only the name and type are read
	if err := json.Unmarshal(deviceConfig, &c); err != nil {
		return nil, fmt.Errorf("tcpline downlink converter: %w", describeJSONError(err))
	}
	return &DownlinkConverter{
		deviceName: firstOf(c.DeviceName, c.Name, defaultDeviceName),
		deviceType: firstOf(c.DeviceType, c.Type, defaultDeviceType),
		log:        log,
	}, nil
}

// Convert implements connector.DownlinkConverter. The result is always one line that
// ends with "\n": a value that would put a line break inside it is refused, as the
// device would read it as two commands.
func (c *DownlinkConverter) Convert(cfg map[string]any, data any) ([]byte, error) {
	if tmpl, ok := cfg["stringToDevice"].(string); ok {
		return c.attributeLine(cfg, tmpl, data)
	}
	word, _ := cfg["command"].(string)
	if word == "" {
		word, _ = cfg["method"].(string)
	}
	if word == "" || strings.ContainsAny(word, " \t\r\n") {
		return nil, fmt.Errorf("RPC command %q: expected one word", word)
	}
	if data == nil {
		return []byte(word + "\n"), nil
	}
	// encoding/json escapes line breaks inside strings, so the params stay on the line.
	params, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("RPC %s: cannot encode params as JSON: %w", word, err)
	}
	b := make([]byte, 0, len(word)+len(params)+2)
	b = append(b, word...)
	b = append(b, ' ')
	b = append(b, params...)
	return append(b, '\n'), nil
}

func (c *DownlinkConverter) attributeLine(cfg map[string]any, tmpl string, data any) ([]byte, error) {
	attr, _ := cfg["attributeOnPlatform"].(string)
	if attr == "" {
		attr, _ = cfg["attributeOnThingsBoard"].(string)
	}
	if attr == "" {
		return nil, errors.New("attribute update: the entry names no attributeOnPlatform")
	}
	value := valueText(data)
	if strings.ContainsAny(value, "\r\n") {
		return nil, fmt.Errorf("attribute %s: the value holds a line break, which the line protocol cannot carry", attr)
	}
	s := strings.NewReplacer(
		"${attr}", attr,
		"${value}", value,
		"${"+attr+"}", value,
		"${deviceName}", c.deviceName,
		"${deviceType}", c.deviceType,
	).Replace(tmpl)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	if strings.ContainsAny(strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r"), "\r\n") {
		return nil, fmt.Errorf("attribute %s: the template makes more than one line", attr)
	}
	return []byte(s), nil
}

// valueText renders a value from the platform: strings as they are, everything else
// as JSON text (true, 25, 2.5, {"a":1}).
func valueText(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
