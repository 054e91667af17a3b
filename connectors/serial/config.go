package serial

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// Defaults of the connector file.
const (
	defaultPort            = "/dev/ttyUSB0"
	defaultBaudrate        = 9600
	defaultDeviceType      = "default"
	defaultDeviceName      = "SerialDevice"
	defaultUplinkQueueSize = 100000
	defaultMaxFrameSize    = 65536
	defaultResponseTimeout = 5 * time.Second
	defaultUplinkClass     = "SerialUplinkConverter"
	defaultDownlinkClass   = "SerialDownlinkConverter"
)

// connectorConfig is the connector file, validated.
type connectorConfig struct {
	name            string
	logLevel        string
	uplinkQueueSize int64
	reportStrategy  *connector.ReportStrategy
	devices         []*deviceConfig
}

// deviceConfig is one entry of "devices", validated.
type deviceConfig struct {
	index    int
	path     string // "devices[0]"
	raw      []byte // the device's JSON object, for the converters
	name     string
	typ      string
	port     string
	baudrate int
	bytesize int
	parity   byte // N E O M S
	stopbits float64
	// timeout is the port read timeout; 0 means none (the Python null).
	timeout          time.Duration
	rtscts, dsrdtr   bool
	xonxoff          bool
	writeTimeout     time.Duration // 0: none
	interByteTimeout time.Duration // accepted; see docs/serial.md
	exclusive        bool
	framing          framing
	uplinkClass      string
	downlinkClass    string
	byteOrder        string // "big" or "little"
	attributeUpdates []attributeUpdateConfig
	rpcs             []rpcConfig
}

// attributeUpdateConfig is one entry of "attributeUpdates".
type attributeUpdateConfig struct {
	attribute      string
	stringToDevice string
}

// rpcConfig is one entry of "serverSideRpc".
type rpcConfig struct {
	method          string
	raw             map[string]any // the entry, for the downlink converter
	withResponse    bool
	response        field
	responseTimeout time.Duration
}

var knownConnectorKeys = setOf("name", "logLevel", "uplinkQueueSize", "reportStrategy", "devices",
	"id", "type", "class", "enableRemoteLogging", "configVersion")

var knownDeviceKeys = setOf("name", "deviceName", "type", "deviceType", "port", "baudrate", "bytesize",
	"parity", "stopbits", "timeout", "rtscts", "dsrdtr", "xonxoff", "writeTimeout", "interByteTimeout",
	"exclusive", "delimiter", "frameLength", "frameGapMs", "frameTimeoutMs", "maxFrameSize",
	"converter", "uplink_converter", "downlink_converter", "byteorder", "reportStrategy",
	"telemetry", "timeseries", "attributes", "attributeUpdates", "serverSideRpc")

var knownDatapointKeys = setOf("key", "type", "untilDelimiter", "fromDelimiter", "fromByte", "toByte", "reportStrategy")

var knownAttributeUpdateKeys = setOf("attributeOnPlatform", "attributeOnThingsBoard", "stringToDevice")

var knownRPCKeys = setOf("method", "type", "withResponse", "responseType", "responseUntilDelimiter",
	"responseFromDelimiter", "responseFromByte", "responseToByte", "responseTimeoutSec")

func setOf(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// warnUnknown logs one warning per unknown key, so that a misspelt key is visible.
func warnUnknown(log *slog.Logger, o obj, known map[string]bool) {
	for k := range o.m {
		if !known[k] {
			log.Warn("unknown key in serial connector configuration, ignored", "key", o.key(k))
		}
	}
}

// parseConfig validates a connector file. Errors name the key path; the caller adds
// the file name.
func parseConfig(raw []byte, log *slog.Logger) (*connectorConfig, error) {
	top, err := decodeObject(raw, "")
	if err != nil {
		return nil, err
	}
	warnUnknown(log, top, knownConnectorKeys)
	c := &connectorConfig{uplinkQueueSize: defaultUplinkQueueSize}
	if c.name, _, err = top.str("name"); err != nil {
		return nil, err
	}
	if c.logLevel, _, err = top.str("logLevel"); err != nil {
		return nil, err
	}
	if c.logLevel != "" {
		switch strings.ToUpper(c.logLevel) {
		case "TRACE", "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "NONE":
		default:
			return nil, top.errf("logLevel", "TRACE, DEBUG, INFO, WARNING, ERROR or CRITICAL", c.logLevel)
		}
	}
	if q, ok, err := top.integer("uplinkQueueSize"); err != nil {
		return nil, err
	} else if ok {
		if q < 1 {
			return nil, top.errf("uplinkQueueSize", "an integer ≥ 1", json.Number(fmt.Sprint(q)))
		}
		c.uplinkQueueSize = q
	}
	if c.reportStrategy, err = parseReportStrategy(top, "reportStrategy"); err != nil {
		return nil, err
	}
	v, _, ok := top.get("devices")
	if !ok {
		return nil, fmt.Errorf("devices: expected an array of device objects, got nothing")
	}
	if _, isArr := v.([]any); !isArr {
		return nil, top.errf("devices", "an array of device objects", v)
	}
	devs, err := top.objects("devices")
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for i, d := range devs {
		dc, err := parseDevice(d, i, log)
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

func parseReportStrategy(o obj, k string) (*connector.ReportStrategy, error) {
	v, _, ok := o.get(k)
	if !ok {
		return nil, nil
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		return nil, o.errf(k, "an object {type, reportPeriod?, ttl?}", v)
	}
	so := obj{m: m, path: o.key(k)}
	t, _, err := so.str("type")
	if err != nil {
		return nil, err
	}
	rs := &connector.ReportStrategy{Type: strings.ToUpper(t)}
	switch rs.Type {
	case connector.OnReceived, connector.OnChange, connector.OnReportPeriod,
		connector.OnChangeOrReportPeriod, connector.Disabled:
	default:
		return nil, so.errf("type", "ON_RECEIVED, ON_CHANGE, ON_REPORT_PERIOD, ON_CHANGE_OR_REPORT_PERIOD or DISABLED", m["type"])
	}
	if rs.ReportPeriod, _, err = so.integer("reportPeriod"); err != nil {
		return nil, err
	}
	if rs.TTL, _, err = so.integer("ttl"); err != nil {
		return nil, err
	}
	if (rs.Type == connector.OnReportPeriod || rs.Type == connector.OnChangeOrReportPeriod) && rs.ReportPeriod <= 0 {
		return nil, so.errf("reportPeriod", "a period in milliseconds > 0 for "+rs.Type, m["reportPeriod"])
	}
	return rs, nil
}

// deviceIdentity reads the name and type of a device object, with the Python defaults.
func deviceIdentity(d obj) (name, typ string, err error) {
	name, ok, err := d.str("deviceName", "name")
	if err != nil {
		return "", "", err
	}
	if !ok || name == "" {
		name = defaultDeviceName
	}
	typ, ok, err = d.str("deviceType", "type")
	if err != nil {
		return "", "", err
	}
	if !ok || typ == "" {
		typ = defaultDeviceType
	}
	return name, typ, nil
}

// seconds reads a duration given in seconds (a number ≥ 0).
func seconds(d obj, k string) (time.Duration, bool, error) {
	f, ok, err := d.number(k)
	if err != nil || !ok {
		return 0, ok, err
	}
	if f < 0 || f > 1e6 {
		return 0, false, d.errf(k, "seconds between 0 and 1000000", d.m[k])
	}
	return time.Duration(f * float64(time.Second)), true, nil
}

func parseDevice(d obj, index int, log *slog.Logger) (*deviceConfig, error) {
	warnUnknown(log, d, knownDeviceKeys)
	raw, err := json.Marshal(d.m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.path, err)
	}
	dc := &deviceConfig{index: index, path: d.path, raw: raw,
		port: defaultPort, baudrate: defaultBaudrate, bytesize: 8, parity: 'N', stopbits: 1,
		timeout: time.Second, exclusive: true, byteOrder: "big",
		uplinkClass: defaultUplinkClass, downlinkClass: defaultDownlinkClass}
	if dc.name, dc.typ, err = deviceIdentity(d); err != nil {
		return nil, err
	}
	if s, ok, err := d.str("port"); err != nil {
		return nil, err
	} else if ok {
		if s == "" {
			return nil, d.errf("port", "a port path such as /dev/ttyUSB0", s)
		}
		dc.port = s
	}
	if b, ok, err := d.integer("baudrate"); err != nil {
		return nil, err
	} else if ok {
		if b <= 0 || b > 100_000_000 {
			return nil, d.errf("baudrate", "a positive integer", d.m["baudrate"])
		}
		dc.baudrate = int(b)
	}
	if b, ok, err := d.integer("bytesize"); err != nil {
		return nil, err
	} else if ok {
		if b < 5 || b > 8 {
			return nil, d.errf("bytesize", "5, 6, 7 or 8", d.m["bytesize"])
		}
		dc.bytesize = int(b)
	}
	if p, ok, err := d.str("parity"); err != nil {
		return nil, err
	} else if ok {
		if len(p) != 1 || !strings.Contains("NEOMS", p) {
			return nil, d.errf("parity", `"N", "E", "O", "M" or "S"`, p)
		}
		dc.parity = p[0]
	}
	if s, ok, err := d.number("stopbits"); err != nil {
		return nil, err
	} else if ok {
		switch s {
		case 1, 2:
		case 1.5:
			return nil, d.errf("stopbits", "1 or 2 (1.5 stop bits are not supported by the serial driver on Linux)", d.m["stopbits"])
		default:
			return nil, d.errf("stopbits", "1, 1.5 or 2", d.m["stopbits"])
		}
		dc.stopbits = s
	}
	if _, present := d.m["timeout"]; present {
		if t, ok, err := seconds(d, "timeout"); err != nil {
			return nil, err
		} else if ok {
			dc.timeout = t
		} else {
			dc.timeout = 0 // null: wait without a timeout, as pyserial does
		}
	}
	for _, b := range []struct {
		k string
		p *bool
	}{{"rtscts", &dc.rtscts}, {"dsrdtr", &dc.dsrdtr}, {"xonxoff", &dc.xonxoff}, {"exclusive", &dc.exclusive}} {
		if v, ok, err := d.boolean(b.k); err != nil {
			return nil, err
		} else if ok {
			*b.p = v
		}
	}
	if dc.writeTimeout, _, err = seconds(d, "writeTimeout"); err != nil {
		return nil, err
	}
	if dc.interByteTimeout, _, err = seconds(d, "interByteTimeout"); err != nil {
		return nil, err
	}
	if dc.framing, err = parseFraming(d); err != nil {
		return nil, err
	}
	if s, ok, err := d.str("converter", "uplink_converter"); err != nil {
		return nil, err
	} else if ok && s != "" {
		dc.uplinkClass = s
	}
	if s, ok, err := d.str("downlink_converter"); err != nil {
		return nil, err
	} else if ok && s != "" {
		dc.downlinkClass = s
	}
	if s, ok, err := d.str("byteorder"); err != nil {
		return nil, err
	} else if ok {
		s = strings.ToLower(s)
		if s != "big" && s != "little" {
			return nil, d.errf("byteorder", `"big" or "little"`, d.m["byteorder"])
		}
		dc.byteOrder = s
	}
	if _, err := parseReportStrategy(d, "reportStrategy"); err != nil {
		return nil, err
	}
	// Datapoints are compiled here too (the converter compiles them again from the
	// device's JSON) so that their errors carry the full key path.
	if _, err := compilePlan(d); err != nil {
		return nil, err
	}
	for _, list := range []struct {
		keys  []string
		known map[string]bool
	}{
		{[]string{"timeseries", "telemetry"}, knownDatapointKeys},
		{[]string{"attributes"}, knownDatapointKeys},
		{[]string{"attributeUpdates"}, knownAttributeUpdateKeys},
		{[]string{"serverSideRpc"}, knownRPCKeys},
	} {
		entries, err := d.objects(list.keys...)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			warnUnknown(log, e, list.known)
		}
	}
	if dc.attributeUpdates, err = parseAttributeUpdates(d); err != nil {
		return nil, err
	}
	if dc.rpcs, err = parseRPCs(d); err != nil {
		return nil, err
	}
	return dc, nil
}

// parseDelimiter reads a frame delimiter: text, or hex bytes written "0x0d0a".
func parseDelimiter(s string) ([]byte, bool) {
	if len(s) > 2 && (strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X")) {
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return nil, false
		}
		return b, true
	}
	return []byte(s), true
}

func parseFraming(d obj) (framing, error) {
	fr := framing{mode: modeDelimiter, delim: []byte("\n"), maxSize: defaultMaxFrameSize}
	if m, ok, err := d.integer("maxFrameSize"); err != nil {
		return fr, err
	} else if ok {
		if m < 1 || m > 64<<20 {
			return fr, d.errf("maxFrameSize", "an integer between 1 and 67108864", d.m["maxFrameSize"])
		}
		fr.maxSize = int(m)
	}
	modes := 0
	if s, ok, err := d.str("delimiter"); err != nil {
		return fr, err
	} else if ok {
		b, valid := parseDelimiter(s)
		if !valid || len(b) == 0 {
			return fr, d.errf("delimiter", `a non-empty delimiter, text or hex such as "0x0d0a"`, s)
		}
		fr.delim = b
		modes++
	}
	if n, ok, err := d.integer("frameLength"); err != nil {
		return fr, err
	} else if ok {
		if n < 1 || int(n) > fr.maxSize {
			return fr, d.errf("frameLength", fmt.Sprintf("an integer between 1 and maxFrameSize (%d)", fr.maxSize), d.m["frameLength"])
		}
		fr.mode, fr.length = modeLength, int(n)
		modes++
	}
	for _, k := range []struct {
		key  string
		mode frameMode
	}{{"frameGapMs", modeGap}, {"frameTimeoutMs", modeTimeout}} {
		ms, ok, err := d.number(k.key)
		if err != nil {
			return fr, err
		}
		if !ok {
			continue
		}
		if ms < 1 || ms > 3_600_000 {
			return fr, d.errf(k.key, "milliseconds between 1 and 3600000", d.m[k.key])
		}
		fr.mode, fr.period = k.mode, time.Duration(ms*float64(time.Millisecond))
		modes++
	}
	if modes > 1 {
		return fr, fmt.Errorf("%s: expected one of delimiter, frameLength, frameGapMs, frameTimeoutMs, got %d of them", d.path, modes)
	}
	return fr, nil
}

func parseAttributeUpdates(d obj) ([]attributeUpdateConfig, error) {
	entries, err := d.objects("attributeUpdates")
	if err != nil {
		return nil, err
	}
	out := make([]attributeUpdateConfig, 0, len(entries))
	for _, e := range entries {
		a, ok, err := e.str("attributeOnPlatform", "attributeOnThingsBoard")
		if err != nil {
			return nil, err
		}
		if !ok || a == "" {
			return nil, e.errf("attributeOnPlatform", "an attribute name (attributeOnPlatform or attributeOnThingsBoard)", e.m["attributeOnPlatform"])
		}
		s, ok, err := e.str("stringToDevice")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, e.errf("stringToDevice", "a string", nil)
		}
		out = append(out, attributeUpdateConfig{attribute: a, stringToDevice: s})
	}
	return out, nil
}

func parseRPCs(d obj) ([]rpcConfig, error) {
	entries, err := d.objects("serverSideRpc")
	if err != nil {
		return nil, err
	}
	out := make([]rpcConfig, 0, len(entries))
	for _, e := range entries {
		r := rpcConfig{raw: e.m, responseTimeout: defaultResponseTimeout}
		m, ok, err := e.str("method")
		if err != nil {
			return nil, err
		}
		if !ok || m == "" {
			return nil, e.errf("method", "a method name", e.m["method"])
		}
		r.method = m
		if _, _, err := e.str("type"); err != nil {
			return nil, err
		}
		if r.withResponse, _, err = e.boolean("withResponse"); err != nil {
			return nil, err
		}
		if r.response, err = compileField(e, responseKeys); err != nil {
			return nil, err
		}
		if t, ok, err := e.number("responseTimeoutSec"); err != nil {
			return nil, err
		} else if ok {
			if t <= 0 || t > 3600 {
				return nil, e.errf("responseTimeoutSec", "seconds > 0 and ≤ 3600", e.m["responseTimeoutSec"])
			}
			r.responseTimeout = time.Duration(t * float64(time.Second))
		}
		out = append(out, r)
	}
	return out, nil
}
