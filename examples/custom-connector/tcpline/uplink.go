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

// Value types of the "telemetry" and "attributes" maps.
const (
	typeString = "string"
	typeInt    = "int"
	typeFloat  = "float"
	typeBool   = "bool"
	typeAuto   = "auto" // unlisted keys with "otherKeys": "telemetry"
)

// canonicalType maps the accepted spellings of a value type to one name.
func canonicalType(t string) (string, bool) {
	switch strings.ToLower(t) {
	case "string", "str":
		return typeString, true
	case "int", "integer", "long":
		return typeInt, true
	case "float", "double", "number":
		return typeFloat, true
	case "bool", "boolean":
		return typeBool, true
	}
	return "", false
}

// uplinkConfig is the part of a device object the uplink converter reads.
type uplinkConfig struct {
	Name              string            `json:"name"`
	DeviceName        string            `json:"deviceName"`
	Type              string            `json:"type"`
	DeviceType        string            `json:"deviceType"`
	Separator         *string           `json:"separator"`
	KeyValueSeparator *string           `json:"keyValueSeparator"`
	TSKey             string            `json:"tsKey"`
	Telemetry         map[string]string `json:"telemetry"`
	Attributes        map[string]string `json:"attributes"`
	OtherKeys         string            `json:"otherKeys"`
	// ReportStrategy is the device's report strategy; the converter puts it on every
	// datapoint (connector.Datapoint.Strategy), where the gateway looks for the
	// device and datapoint levels.
	ReportStrategy *connector.ReportStrategy `json:"reportStrategy"`
}

// field says where one key of a line goes.
type field struct {
	typ       string
	attribute bool
}

// UplinkConverter is TCPLineUplinkConverter: it turns one line such as
// "ts=1700000000000;temp=21.5;burner=on;fw=1.2.3" into ConvertedData, typing each
// value by the device's "telemetry" and "attributes" maps. It is made for one device
// and is safe for use by one goroutine at a time.
type UplinkConverter struct {
	deviceName, deviceType string
	sep, kv                string
	tsKey                  string
	fields                 map[string]field
	otherTelemetry         bool
	strategy               *connector.ReportStrategy
	log                    *slog.Logger
}

// NewUplinkConverter makes the converter of one device from the device's JSON object
// in the connector file. It is the factory registered as "TCPLineUplinkConverter":
// the map lookups and type names are checked here once, not per line.
func NewUplinkConverter(deviceConfig []byte, log *slog.Logger) (connector.UplinkConverter, error) {
	u, err := newUplinkConverter(deviceConfig, log)
	if err != nil {
		return nil, fmt.Errorf("tcpline uplink converter: %w", err)
	}
	return u, nil
}

func newUplinkConverter(deviceConfig []byte, log *slog.Logger) (*UplinkConverter, error) {
	if log == nil {
		log = slog.Default()
	}
	var c uplinkConfig
	if err := json.Unmarshal(deviceConfig, &c); err != nil {
		return nil, describeJSONError(err)
	}
	u := &UplinkConverter{
		deviceName: firstOf(c.DeviceName, c.Name, defaultDeviceName),
		deviceType: firstOf(c.DeviceType, c.Type, defaultDeviceType),
		sep:        ";", kv: "=", tsKey: c.TSKey,
		fields: make(map[string]field, len(c.Telemetry)+len(c.Attributes)),
		log:    log,
	}
	if c.Separator != nil {
		if *c.Separator == "" || strings.ContainsAny(*c.Separator, "\r\n") {
			return nil, fmt.Errorf("separator: expected a non-empty text without a line break, got %q", *c.Separator)
		}
		u.sep = *c.Separator
	}
	if c.KeyValueSeparator != nil {
		if *c.KeyValueSeparator == "" || strings.ContainsAny(*c.KeyValueSeparator, "\r\n") {
			return nil, fmt.Errorf("keyValueSeparator: expected a non-empty text without a line break, got %q", *c.KeyValueSeparator)
		}
		u.kv = *c.KeyValueSeparator
	}
	if u.sep == u.kv {
		return nil, fmt.Errorf("keyValueSeparator: expected a text other than separator, got %q for both", u.sep)
	}
	for _, m := range []struct {
		section   string
		types     map[string]string
		attribute bool
	}{{"telemetry", c.Telemetry, false}, {"attributes", c.Attributes, true}} {
		for key, t := range m.types {
			ct, ok := canonicalType(t)
			if !ok {
				return nil, fmt.Errorf("%s.%s: expected int, float, bool or string, got %q", m.section, key, t)
			}
			if key == "" {
				return nil, fmt.Errorf("%s: expected non-empty keys, got \"\"", m.section)
			}
			if _, dup := u.fields[key]; dup {
				return nil, fmt.Errorf("%s.%s: expected a key in telemetry or in attributes, got it in both", m.section, key)
			}
			u.fields[key] = field{typ: ct, attribute: m.attribute}
		}
	}
	switch c.OtherKeys {
	case "", "ignore":
	case "telemetry":
		u.otherTelemetry = true
	default:
		return nil, fmt.Errorf(`otherKeys: expected "ignore" or "telemetry", got %q`, c.OtherKeys)
	}
	if rs := c.ReportStrategy; rs != nil {
		if err := checkStrategy(rs); err != nil {
			return nil, fmt.Errorf("reportStrategy.%w", err)
		}
		u.strategy = rs
	}
	if len(u.fields) == 0 && !u.otherTelemetry {
		return nil, errors.New(`telemetry: expected a map of keys to types (or "otherKeys": "telemetry"), got none: no line would give any data`)
	}
	return u, nil
}

// Convert converts one line (without its line break). Telemetry values share one
// entry whose TS is the tsKey's value, or 0 when the line has none (the connector then
// stamps the time the line was read). A pair that cannot be converted is logged and
// left out; Convert fails only when the line holds no key=value pair at all.
func (u *UplinkConverter) Convert(line []byte) (*connector.ConvertedData, error) {
	text := strings.TrimSpace(string(line))
	out := &connector.ConvertedData{DeviceName: u.deviceName, DeviceType: u.deviceType}
	var (
		ts     int64
		values []connector.Datapoint
		pairs  int
	)
	for part := range strings.SplitSeq(text, u.sep) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, raw, ok := strings.Cut(part, u.kv)
		key, raw = strings.TrimSpace(key), strings.TrimSpace(raw)
		if !ok || key == "" {
			u.log.Debug("not a key=value pair, skipped", "device", u.deviceName, "pair", part)
			continue
		}
		pairs++
		if u.tsKey != "" && key == u.tsKey {
			n, err := strconv.ParseInt(raw, 10, 64)
			if err != nil || n <= 0 {
				u.log.Warn("timestamp is not milliseconds since the epoch, using the read time", "device", u.deviceName, "key", key, "value", raw)
				continue
			}
			ts = n
			continue
		}
		f, ok := u.fields[key]
		if !ok {
			if !u.otherTelemetry {
				continue
			}
			f = field{typ: typeAuto}
		}
		v, err := parseValue(raw, f.typ)
		if err != nil {
			u.log.Warn("value left out", "device", u.deviceName, "key", key, "error", err)
			continue
		}
		dp := connector.Datapoint{Key: key, Value: v, Strategy: u.strategy}
		if f.attribute {
			out.Attributes = append(out.Attributes, dp)
		} else {
			values = append(values, dp)
		}
	}
	if pairs == 0 {
		return nil, fmt.Errorf("no %s pair in line %q", "key"+u.kv+"value", clip(text))
	}
	if len(values) > 0 {
		out.AddTelemetry(ts, values...)
	}
	return out, nil
}

// checkStrategy validates a report strategy by the rules of tb_gateway.json.
func checkStrategy(rs *connector.ReportStrategy) error {
	rs.Type = strings.ToUpper(rs.Type)
	switch rs.Type {
	case connector.OnReceived, connector.OnChange, connector.Disabled:
	case connector.OnReportPeriod, connector.OnChangeOrReportPeriod:
		if rs.ReportPeriod <= 0 {
			return fmt.Errorf("reportPeriod: expected milliseconds > 0 for %s, got %d", rs.Type, rs.ReportPeriod)
		}
	default:
		return fmt.Errorf("type: expected ON_RECEIVED, ON_CHANGE, ON_REPORT_PERIOD, ON_CHANGE_OR_REPORT_PERIOD or DISABLED, got %q", rs.Type)
	}
	if rs.TTL < 0 {
		return fmt.Errorf("ttl: expected seconds ≥ 0, got %d", rs.TTL)
	}
	return nil
}

// parseValue converts the text of one value to typ.
func parseValue(raw, typ string) (connector.Value, error) {
	switch typ {
	case typeString:
		return connector.String(raw), nil
	case typeInt:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return connector.Value{}, fmt.Errorf("expected an int, got %q", raw)
		}
		return connector.Int(n), nil
	case typeFloat:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return connector.Value{}, fmt.Errorf("expected a float, got %q", raw)
		}
		return connector.Float(f), nil
	case typeBool:
		b, ok := parseBool(raw)
		if !ok {
			return connector.Value{}, fmt.Errorf("expected a bool (true/false, 1/0, on/off, yes/no), got %q", raw)
		}
		return connector.Bool(b), nil
	}
	// auto: the narrowest type that reads the whole text.
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
		return connector.Int(n), nil
	}
	if f, err := strconv.ParseFloat(raw, 64); err == nil {
		return connector.Float(f), nil
	}
	switch strings.ToLower(raw) {
	case "true":
		return connector.Bool(true), nil
	case "false":
		return connector.Bool(false), nil
	}
	return connector.String(raw), nil
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "1", "on", "yes":
		return true, true
	case "false", "0", "off", "no":
		return false, true
	}
	return false, false
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// clip shortens text for an error or a log line.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// describeJSONError turns encoding/json's type errors into "key: expected T, got U".
func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("%s: expected %s, got a JSON %s", te.Field, te.Type, te.Value)
	}
	return err
}
