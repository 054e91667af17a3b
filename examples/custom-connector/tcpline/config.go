package tcpline

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults of the connector file.
const (
	defaultDeviceName      = "TCPLineDevice"
	defaultDeviceType      = "default"
	defaultHost            = "127.0.0.1"
	defaultConnectTimeout  = 5 * time.Second
	defaultWriteTimeout    = 5 * time.Second
	defaultResponseTimeout = 5 * time.Second
	defaultMaxLineLength   = 64 << 10
	defaultUplinkClass     = "TCPLineUplinkConverter"
	defaultDownlinkClass   = "TCPLineDownlinkConverter"
)

// connectorConfig is the connector file, validated.
type connectorConfig struct {
	name    string
	devices []*deviceConfig
}

// deviceConfig is one entry of "devices", validated.
type deviceConfig struct {
	path           string // "devices[0]", for messages
	raw            []byte // the device's JSON object, for the converters
	name, typ      string
	address        string // host:port
	connectTimeout time.Duration
	// readTimeout ends a connection that stayed silent that long (0: never), so that a
	// device that vanished without closing the connection is noticed.
	readTimeout   time.Duration
	writeTimeout  time.Duration
	maxLine       int
	uplinkClass   string
	downlinkClass string
	// attributeTemplate is the line for an updated attribute without its own entry
	// ("" : such updates are logged and dropped).
	attributeTemplate string
	attributeUpdates  map[string]map[string]any // attribute → its entry
	rpcs              map[string]*rpcConfig     // method → its entry
}

// rpcConfig is one entry of "serverSideRpc".
type rpcConfig struct {
	method          string
	raw             map[string]any // the entry, for the downlink converter
	withResponse    bool
	responsePrefix  string
	responseTimeout time.Duration
}

var knownConnectorKeys = setOf("name", "logLevel", "reportStrategy", "devices",
	"id", "type", "class", "enableRemoteLogging", "configVersion")

var knownDeviceKeys = setOf("name", "deviceName", "type", "deviceType", "host", "port",
	"connectTimeoutSec", "readTimeoutSec", "writeTimeoutSec", "maxLineLength",
	"converter", "uplink_converter", "downlink_converter", "reportStrategy",
	"separator", "keyValueSeparator", "tsKey", "telemetry", "attributes", "otherKeys",
	"attributeTemplate", "attributeUpdates", "serverSideRpc")

var knownAttributeUpdateKeys = setOf("attributeOnPlatform", "attributeOnThingsBoard", "stringToDevice")

var knownRPCKeys = setOf("method", "command", "withResponse", "responsePrefix", "responseTimeoutSec")

func setOf(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// warnUnknown logs one warning per unknown key, so that a misspelt key is seen
// rather than silently ignored; unknown keys are not errors because Python
// configurations carry keys of their own.
func warnUnknown(log *slog.Logger, path string, m map[string]json.RawMessage, known map[string]bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if !known[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		log.Warn("unknown key in tcpline connector configuration, ignored", "key", join(path, k))
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parseConfig validates a connector file. Errors name the key path; the caller adds
// the file name.
func parseConfig(raw []byte, log *slog.Logger) (*connectorConfig, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("expected a JSON object: %w", err)
	}
	warnUnknown(log, "", top, knownConnectorKeys)
	c := &connectorConfig{}
	if v, ok := top["name"]; ok {
		if err := json.Unmarshal(v, &c.name); err != nil {
			return nil, fmt.Errorf("name: expected a string, got %s", v)
		}
	}
	var devs []json.RawMessage
	if err := json.Unmarshal(top["devices"], &devs); err != nil || len(devs) == 0 {
		return nil, fmt.Errorf("devices: expected a non-empty array of device objects, got %s", orNothing(top["devices"]))
	}
	names := map[string]string{}
	for i, d := range devs {
		dc, err := parseDevice(d, fmt.Sprintf("devices[%d]", i), log)
		if err != nil {
			return nil, err
		}
		if prev, dup := names[dc.name]; dup {
			return nil, fmt.Errorf("%s.name: expected a device name not used by %s, got %q", dc.path, prev, dc.name)
		}
		names[dc.name] = dc.path
		c.devices = append(c.devices, dc)
	}
	return c, nil
}

func orNothing(v json.RawMessage) string {
	if len(v) == 0 {
		return "nothing"
	}
	return clip(string(v))
}

// deviceJSON is a device object as written; pointers tell absent keys from zeros.
type deviceJSON struct {
	Name              string           `json:"name"`
	DeviceName        string           `json:"deviceName"`
	Type              string           `json:"type"`
	DeviceType        string           `json:"deviceType"`
	Host              string           `json:"host"`
	Port              *int             `json:"port"`
	ConnectTimeoutSec *float64         `json:"connectTimeoutSec"`
	ReadTimeoutSec    *float64         `json:"readTimeoutSec"`
	WriteTimeoutSec   *float64         `json:"writeTimeoutSec"`
	MaxLineLength     *int             `json:"maxLineLength"`
	Converter         string           `json:"converter"`
	UplinkConverter   string           `json:"uplink_converter"`
	DownlinkConverter string           `json:"downlink_converter"`
	AttributeTemplate *string          `json:"attributeTemplate"`
	AttributeUpdates  []map[string]any `json:"attributeUpdates"`
	ServerSideRPC     []map[string]any `json:"serverSideRpc"`
}

func parseDevice(raw json.RawMessage, path string, log *slog.Logger) (*deviceConfig, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil || keys == nil {
		return nil, fmt.Errorf("%s: expected a device object, got %s", path, clip(string(raw)))
	}
	warnUnknown(log, path, keys, knownDeviceKeys)
	var d deviceJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s.%w", path, describeJSONError(err))
	}
	dc := &deviceConfig{path: path, raw: raw,
		name:           firstOf(d.DeviceName, d.Name, defaultDeviceName),
		typ:            firstOf(d.DeviceType, d.Type, defaultDeviceType),
		connectTimeout: defaultConnectTimeout, writeTimeout: defaultWriteTimeout,
		maxLine:     defaultMaxLineLength,
		uplinkClass: firstOf(d.Converter, d.UplinkConverter, defaultUplinkClass), downlinkClass: firstOf(d.DownlinkConverter, defaultDownlinkClass),
		attributeUpdates: map[string]map[string]any{}, rpcs: map[string]*rpcConfig{},
	}
	if d.Port == nil || *d.Port < 1 || *d.Port > 65535 {
		return nil, fmt.Errorf("%s.port: expected a TCP port between 1 and 65535, got %s", path, orNothing(keys["port"]))
	}
	host := firstOf(d.Host, defaultHost)
	if strings.ContainsAny(host, " /") {
		return nil, fmt.Errorf("%s.host: expected a host name or IP address, got %q", path, host)
	}
	dc.address = net.JoinHostPort(host, strconv.Itoa(*d.Port))
	for _, s := range []struct {
		key  string
		v    *float64
		dst  *time.Duration
		zero bool // 0 allowed (means "never")
	}{
		{"connectTimeoutSec", d.ConnectTimeoutSec, &dc.connectTimeout, false},
		{"readTimeoutSec", d.ReadTimeoutSec, &dc.readTimeout, true},
		{"writeTimeoutSec", d.WriteTimeoutSec, &dc.writeTimeout, false},
	} {
		if s.v == nil {
			continue
		}
		if *s.v < 0 || *s.v > 86400 || (*s.v == 0 && !s.zero) {
			return nil, fmt.Errorf("%s.%s: expected seconds > 0 and ≤ 86400, got %v", path, s.key, *s.v)
		}
		*s.dst = time.Duration(*s.v * float64(time.Second))
	}
	if d.MaxLineLength != nil {
		if *d.MaxLineLength < 16 || *d.MaxLineLength > 16<<20 {
			return nil, fmt.Errorf("%s.maxLineLength: expected bytes between 16 and 16777216, got %d", path, *d.MaxLineLength)
		}
		dc.maxLine = *d.MaxLineLength
	}
	if d.AttributeTemplate != nil {
		if err := checkTemplate(*d.AttributeTemplate); err != nil {
			return nil, fmt.Errorf("%s.attributeTemplate: %w", path, err)
		}
		dc.attributeTemplate = *d.AttributeTemplate
	}
	for i, e := range d.AttributeUpdates {
		p := fmt.Sprintf("%s.attributeUpdates[%d]", path, i)
		warnUnknownAny(log, p, e, knownAttributeUpdateKeys)
		attr, _ := e["attributeOnPlatform"].(string)
		if attr == "" {
			attr, _ = e["attributeOnThingsBoard"].(string)
		}
		if attr == "" {
			return nil, fmt.Errorf("%s.attributeOnPlatform: expected an attribute name, got %s", p, jsonText(e["attributeOnPlatform"]))
		}
		tmpl, ok := e["stringToDevice"].(string)
		if !ok {
			return nil, fmt.Errorf("%s.stringToDevice: expected a string, got %s", p, jsonText(e["stringToDevice"]))
		}
		if err := checkTemplate(tmpl); err != nil {
			return nil, fmt.Errorf("%s.stringToDevice: %w", p, err)
		}
		if _, dup := dc.attributeUpdates[attr]; !dup { // the first entry of an attribute wins
			dc.attributeUpdates[attr] = e
		}
	}
	for i, e := range d.ServerSideRPC {
		p := fmt.Sprintf("%s.serverSideRpc[%d]", path, i)
		r, err := parseRPC(e, p, log)
		if err != nil {
			return nil, err
		}
		if _, dup := dc.rpcs[r.method]; !dup { // the first entry of a method wins
			dc.rpcs[r.method] = r
		}
	}
	return dc, nil
}

func parseRPC(e map[string]any, p string, log *slog.Logger) (*rpcConfig, error) {
	warnUnknownAny(log, p, e, knownRPCKeys)
	r := &rpcConfig{raw: e, responseTimeout: defaultResponseTimeout}
	r.method, _ = e["method"].(string)
	if r.method == "" {
		return nil, fmt.Errorf("%s.method: expected a method name, got %s", p, jsonText(e["method"]))
	}
	word := r.method
	if v, ok := e["command"]; ok {
		s, isStr := v.(string)
		if !isStr || s == "" {
			return nil, fmt.Errorf("%s.command: expected a non-empty string, got %s", p, jsonText(v))
		}
		word = s
	}
	if strings.ContainsAny(word, " \t\r\n") {
		return nil, fmt.Errorf("%s: expected a command of one word (set \"command\" when the method name has spaces), got %q", p, word)
	}
	if v, ok := e["withResponse"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return nil, fmt.Errorf("%s.withResponse: expected true or false, got %s", p, jsonText(v))
		}
		r.withResponse = b
	}
	if v, ok := e["responsePrefix"]; ok {
		s, isStr := v.(string)
		if !isStr || strings.ContainsAny(s, "\r\n") {
			return nil, fmt.Errorf("%s.responsePrefix: expected a string without a line break, got %s", p, jsonText(v))
		}
		r.responsePrefix = s
	}
	if v, ok := e["responseTimeoutSec"]; ok {
		f, isNum := v.(float64)
		if !isNum || f <= 0 || f > 55 {
			// The gateway holds a device's RPCs for at most 60 s: a longer wait would
			// outlive it.
			return nil, fmt.Errorf("%s.responseTimeoutSec: expected seconds > 0 and ≤ 55, got %s", p, jsonText(v))
		}
		r.responseTimeout = time.Duration(f * float64(time.Second))
	}
	return r, nil
}

// checkTemplate refuses a template that would write more than one line.
func checkTemplate(t string) error {
	body := strings.TrimSuffix(strings.TrimSuffix(t, "\n"), "\r")
	if body == "" {
		return errors.New("expected a template such as \"set ${attr}=${value}\\n\", got an empty one")
	}
	if strings.ContainsAny(body, "\r\n") {
		return fmt.Errorf("expected one line (a line break only at the end), got %q", t)
	}
	return nil
}

func warnUnknownAny(log *slog.Logger, path string, m map[string]any, known map[string]bool) {
	raw := make(map[string]json.RawMessage, len(m))
	for k := range m {
		raw[k] = nil
	}
	warnUnknown(log, path, raw, known)
}

func jsonText(v any) string {
	if v == nil {
		return "nothing"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return clip(string(b))
}
