package connector

import (
	"bytes"
	"io"
	"unicode/utf8"
)

// AttributeUpdate is a shared-attribute update from the platform to one device:
// {"device":"D","data":{"k":v}} on v1/gateway/attributes.
type AttributeUpdate struct {
	Device string
	// Data maps attribute names to their new values, decoded by encoding/json with
	// numbers as json.Number so that large integers stay exact.
	Data map[string]any
}

// RPCRequest is a server-side RPC from the platform to one device:
// {"device":"D","data":{"id":N,"method":"m","params":p}} on v1/gateway/rpc.
type RPCRequest struct {
	Device string
	ID     int
	Method string
	// Params is decoded by encoding/json with numbers as json.Number; nil when absent.
	Params any
}

// ReportStrategy says when the gateway reports a datapoint to the platform
// (tb_gateway.json "reportStrategy", at gateway, connector, device or datapoint level).
type ReportStrategy struct {
	// Type is ON_RECEIVED, ON_CHANGE, ON_REPORT_PERIOD, ON_CHANGE_OR_REPORT_PERIOD or
	// DISABLED.
	Type string `json:"type"`
	// ReportPeriod is in milliseconds, for the periodic types.
	ReportPeriod int64 `json:"reportPeriod,omitempty"`
	// TTL is in seconds: how long a value is kept for ON_CHANGE comparison and
	// periodic re-sends after its last update (0: the gateway's default).
	TTL int64 `json:"ttl,omitempty"`
}

// Report strategy types.
const (
	OnReceived             = "ON_RECEIVED"
	OnChange               = "ON_CHANGE"
	OnReportPeriod         = "ON_REPORT_PERIOD"
	OnChangeOrReportPeriod = "ON_CHANGE_OR_REPORT_PERIOD"
	Disabled               = "DISABLED"
)

// UplinkConverter turns one message from a device into ConvertedData. A converter is
// made for one device, with that device's configuration (as in the guides, where the
// converter's __init__ receives the device config).
type UplinkConverter interface {
	// Convert converts data. It returns an error when nothing could be converted; a
	// datapoint that fails alone is logged by the converter and left out.
	Convert(data []byte) (*ConvertedData, error)
}

// DownlinkConverter turns a request from the platform into bytes for a device.
type DownlinkConverter interface {
	// Convert converts data (an RPC's params, or an attribute's value) using cfg, the
	// configuration entry that matched the request (a "serverSideRpc" or
	// "attributeUpdates" entry of the device, as a JSON object).
	Convert(cfg map[string]any, data any) ([]byte, error)
}

// Converters finds converters by class name for one connector: the built-in
// converters registered with RegisterUplink/RegisterDownlink first, then script
// converters in the extensions folder. deviceConfig is the device's JSON object
// from the connector file.
type Converters interface {
	Uplink(class string, deviceConfig []byte) (UplinkConverter, error)
	Downlink(class string, deviceConfig []byte) (DownlinkConverter, error)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }
