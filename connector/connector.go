// Package connector is the public contract between the iotgw gateway core and the
// connectors and converters that talk to devices.
//
// It keeps the vocabulary of the ThingsBoard IoT Gateway guides, so that a reader of
// the Python documentation finds their way:
//
//	send_to_storage          → Gateway.SendToStorage
//	add_device / del_device  → Gateway.AddDevice / Gateway.DelDevice
//	send_rpc_reply           → Gateway.SendRPCReply
//	on_attributes_update     → Connector.OnAttributesUpdate
//	server_side_rpc_handler  → Connector.ServerSideRPC
//	convert(config, data)    → UplinkConverter.Convert / DownlinkConverter.Convert
//
// A connector package implements Connector, and registers a Factory for its
// type and class from init():
//
//	func init() { connector.Register("serial", "SerialConnector", New) }
//
// The gateway creates one Connector per entry of the "connectors" list in
// tb_gateway.json, calls Open once, routes downlink requests to it, and calls Close
// once when it stops. This package imports nothing but the standard library.
package connector

import (
	"context"
	"encoding/json"
	"log/slog"
)

// Connector talks to devices of one protocol. The gateway calls Open once, then
// routes attribute updates and RPC requests for the devices the connector owns to it,
// then calls Close once.
type Connector interface {
	// Open starts the connector's goroutines and returns without waiting for devices.
	// ctx is done as soon as the gateway begins to stop, shortly before Close; work
	// that must go on until Close (flushing a last frame) should not depend on it.
	// Open and Close are called once per instance. A configuration reload makes a new
	// instance with the Factory while the old one still runs, then closes the old one
	// and opens the new one. Close is called even when Open failed.
	Open(ctx context.Context) error
	// Close stops every goroutine the connector started, waits for them and releases
	// ports and connections. It is safe to call more than once, and must return within
	// a couple of seconds: the whole gateway stops within 5 s.
	Close() error
	// Name is the connector name from tb_gateway.json.
	Name() string
	// Type is the connector type from tb_gateway.json ("serial", ...).
	Type() string
	// ID is the connector id from tb_gateway.json, or one the gateway derived.
	ID() string
	// IsConnected reports whether every device of the connector is reachable now.
	IsConnected() bool
	// IsStopped reports whether Close has been called (or Open never was).
	IsStopped() bool
	// OnAttributesUpdate is called with a shared-attribute update from the platform
	// for a device this connector owns. It must not block for long: hand slow work
	// to the connector's own goroutines.
	OnAttributesUpdate(AttributeUpdate)
	// ServerSideRPC is called with an RPC request for a device this connector owns.
	// The connector answers with Gateway.SendRPCReply, from any goroutine. RPCs to
	// one device are delivered one at a time: the device's queue waits for the reply
	// (up to 60 s) before the next RPC or attribute update of that device; RPCs to
	// different devices are concurrent.
	//
	// A connector-type RPC sent to the gateway itself as "<type>_<method>" (for
	// example serial_ports) arrives at every connector of that type with Device ""
	// and Method "<method>"; it is answered with SendRPCReply("", id, content), and
	// the first connector to answer wins.
	ServerSideRPC(RPCRequest)
}

// Gateway is what the core offers a connector. All methods are safe for
// concurrent use.
type Gateway interface {
	// SendToStorage hands converted data to the gateway: report strategy, then storage,
	// then the platform. The device is announced to the platform on its first data.
	// connectorName must be the connector's Name(), so that downlink requests for the
	// device come back to it. It blocks while storage applies back-pressure. Data is
	// accepted while the gateway stops (so that a last frame reaches durable storage);
	// it returns an error when the data is invalid (no device name) or after the
	// gateway has stopped.
	SendToStorage(connectorName, connectorID string, data *ConvertedData) error
	// AddDevice announces a device owned by c, so that downlink requests reach c even
	// before the device has sent data. c.Name() must be the connector's name in
	// tb_gateway.json, so that its report strategy and statistics apply.
	AddDevice(name, deviceType string, c Connector)
	// DelDevice tells the platform the device disconnected and stops routing
	// downlink requests to it (connectors call it for each device from Close).
	DelDevice(name string)
	// SendRPCReply answers the RPC request id of device. content is encoded as JSON
	// (a map, a struct, or json.RawMessage). It returns when the platform acknowledged
	// the reply, or with an error.
	SendRPCReply(device string, id int, content any) error
}

// Config is what a connector's Factory receives: its entry of tb_gateway.json and the
// content of its configuration file.
type Config struct {
	// Name, Type, Class and ID are the connector's entry in tb_gateway.json.
	Name, Type, Class, ID string
	// Path is the connector configuration file, absolute.
	Path string
	// Raw is the connector configuration file's content as JSON (a YAML main file's
	// inline configuration is converted to JSON).
	Raw json.RawMessage
	// ExtensionsDir is the extensions folder, where script converters and process
	// connectors live ("extensions" beside the configuration folder by default).
	ExtensionsDir string
	// Logger is the connector's logger, at the level of its "logLevel"; it already
	// carries a connector=NAME attribute.
	Logger *slog.Logger
	// Converters finds converters by class name: built-ins first, then the
	// extensions folder. Never nil when the gateway calls a Factory.
	Converters Converters
}

// Factory creates a connector from its configuration. It validates the
// configuration and returns an error that names the file, the key path and what
// was expected; it must not open ports or start goroutines (Open does), so that
// `iotgw check` can call it to validate a file.
type Factory func(gw Gateway, cfg Config) (Connector, error)
