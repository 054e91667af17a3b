package extensions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/iotgw/iotgw/connector"
)

// ProtocolVersion is the version of the line-delimited JSON protocol spoken with
// process connectors: every message down carries it as "v"; a message up may carry
// it, and one with another version is refused.
const ProtocolVersion = 1

// MaxLineSize is the longest line a process may write on stdout, without its "\n".
// A longer line is dropped (and logged), the next line is read normally.
const MaxLineSize = 1 << 20

// Message types, down (gateway → process) and up (process → gateway).
const (
	msgConfig     = "config"
	msgAttributes = "attributes"
	msgRPC        = "rpc"
	msgStop       = "stop"

	msgData       = "data"
	msgConnect    = "connect"
	msgDisconnect = "disconnect"
	msgRPCReply   = "rpc_reply"
	msgLog        = "log"
	msgStatus     = "status"
)

type downConfig struct {
	V             int             `json:"v"`
	Type          string          `json:"type"`
	Name          string          `json:"name"`
	ID            string          `json:"id"`
	ConnectorType string          `json:"connectorType"`
	Class         string          `json:"class"`
	Configuration json.RawMessage `json:"configuration"`
}

type downAttributes struct {
	V      int            `json:"v"`
	Type   string         `json:"type"`
	Device string         `json:"device"`
	Data   map[string]any `json:"data"`
}

type downRPC struct {
	V      int    `json:"v"`
	Type   string `json:"type"`
	Device string `json:"device"`
	ID     int    `json:"id"`
	Method string `json:"method"`
	Params any    `json:"params,omitempty"`
}

// stopLine is the last message a process gets before its stdin is closed.
var stopLine = []byte(`{"v":1,"type":"stop"}` + "\n")

// encodeLine encodes a down message as one line. encoding/json never writes a raw
// newline inside a value, so the line cannot be split.
func encodeLine(m any) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// configLine makes the first line a process receives. raw is the connector's
// configuration file, compacted onto one line.
func configLine(cfg connector.Config) ([]byte, error) {
	conf := json.RawMessage(`{}`)
	if len(bytes.TrimSpace(cfg.Raw)) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, cfg.Raw); err != nil {
			return nil, fmt.Errorf("%s: invalid JSON: %w", cfg.Path, err)
		}
		conf = buf.Bytes()
	}
	return encodeLine(downConfig{V: ProtocolVersion, Type: msgConfig, Name: cfg.Name, ID: cfg.ID,
		ConnectorType: cfg.Type, Class: cfg.Class, Configuration: conf})
}

// upMessage is any message from a process; which fields matter depends on Type.
// Unknown fields are ignored, so that a newer process can talk to this gateway.
type upMessage struct {
	V          int             `json:"v"`
	Type       string          `json:"type"`
	DeviceName string          `json:"deviceName"`
	DeviceType string          `json:"deviceType"`
	Device     string          `json:"device"`
	Telemetry  json.RawMessage `json:"telemetry"`
	Attributes json.RawMessage `json:"attributes"`
	ID         *int            `json:"id"`
	Data       json.RawMessage `json:"data"`
	Error      *string         `json:"error"`
	Level      string          `json:"level"`
	Msg        string          `json:"msg"`
	Connected  *bool           `json:"connected"`
}

// decodeUp parses one line from a process.
func decodeUp(line []byte) (*upMessage, error) {
	var m upMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if m.V != 0 && m.V != ProtocolVersion {
		return nil, fmt.Errorf("protocol version %d not supported (this gateway speaks %d)", m.V, ProtocolVersion)
	}
	if m.Type == "" {
		return nil, errors.New(`no "type"`)
	}
	return &m, nil
}

// name returns the device a message is about: "deviceName", else "device".
func (m *upMessage) name() string {
	if m.DeviceName != "" {
		return m.DeviceName
	}
	return m.Device
}

// converted makes ConvertedData of a "data" message: telemetry is either
// [{"ts": ms, "values": {...}}, ...] or {"k": v, ...} (one entry, ts 0: "now").
func (m *upMessage) converted() (*connector.ConvertedData, error) {
	d := &connector.ConvertedData{DeviceName: m.name(), DeviceType: m.DeviceType}
	if d.DeviceName == "" {
		return nil, errors.New(`data without "deviceName"`)
	}
	if d.DeviceType == "" {
		d.DeviceType = "default"
	}
	tel := bytes.TrimSpace(m.Telemetry)
	switch {
	case len(tel) == 0 || bytes.Equal(tel, []byte("null")):
	case tel[0] == '{':
		dps, err := orderedDatapoints(tel)
		if err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
		if len(dps) > 0 {
			d.Telemetry = append(d.Telemetry, connector.TelemetryEntry{Values: dps})
		}
	case tel[0] == '[':
		var entries []struct {
			TS     int64           `json:"ts"`
			Values json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal(tel, &entries); err != nil {
			return nil, fmt.Errorf(`telemetry: expected [{"ts": ms, "values": {...}}]: %w`, err)
		}
		for i, e := range entries {
			dps, err := orderedDatapoints(e.Values)
			if err != nil {
				return nil, fmt.Errorf("telemetry[%d].values: %w", i, err)
			}
			if len(dps) > 0 {
				d.Telemetry = append(d.Telemetry, connector.TelemetryEntry{TS: e.TS, Values: dps})
			}
		}
	default:
		return nil, errors.New("telemetry: expected an object or a list")
	}
	if attr := bytes.TrimSpace(m.Attributes); len(attr) > 0 && !bytes.Equal(attr, []byte("null")) {
		dps, err := orderedDatapoints(attr)
		if err != nil {
			return nil, fmt.Errorf("attributes: %w", err)
		}
		d.Attributes = dps
	}
	return d, nil
}

// orderedDatapoints reads a JSON object's keys and values in the order written.
func orderedDatapoints(obj []byte) ([]connector.Datapoint, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("expected an object")
	}
	var out []connector.Datapoint
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		var v connector.Value
		if err := v.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		if v.Kind() == connector.KindFloat && !bytes.ContainsAny(raw, ".eE") {
			// An integer too large for int64: keep its digits rather than round it.
			v = connector.RawJSON(string(raw))
		}
		out = append(out, connector.Datapoint{Key: k, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("text after the object")
	}
	return out, nil
}
