// Package devices is the gateway's device registry and its persistence in
// connected_devices.json.
//
// # Registry
//
// Registry maps each device, by the name its connector uses, to its type and
// the name and id of the connector that owns it, and keeps the renames the
// platform made. It is safe for concurrent use; the data path only needs
// PlatformName (uplink: connector name → platform name) and Lookup (downlink:
// platform name → device and its connector), each a read-locked map lookup.
//
// # connected_devices.json
//
// The file lives beside tb_gateway.json and has exactly the Python gateway 3.8
// shape, so that an upgrade (or a downgrade) keeps the devices:
//
//	{
//	  "Device A": {
//	    "connectorId": "b2f0...",
//	    "connectorName": "Serial Connector",
//	    "deviceType": "thermometer",
//	    "renaming": null
//	  }
//	}
//
// keyed by the connector-side device name, keys sorted, two-space indent,
// non-ASCII escaped as \uXXXX (Python's json.dumps(indent=2, sort_keys=True)),
// "renaming" the platform-side name or null. Load also reads the older shapes:
// {"Device A": ["connector name", "device type", "renamed name"?]} (3.0 to 3.6)
// and {"Device A": "connector name"} (2.x; the type becomes "default"), which
// Python discards. A missing or empty file is an empty registry.
//
// Save writes atomically: a temporary file in the same folder, fsync, rename over
// the old file, fsync of the folder; a crash leaves the old or the new file, never
// a torn one. Store saves a Registry from its own goroutine, at most once per
// interval however often the registry changes, and once more on Close.
//
// # Renaming and deletion on the platform
//
// When a user renames or deletes a device on ThingsBoard, the platform calls an
// RPC on the gateway device (v1/devices/me/rpc/request/N):
//
//	{"method": "gateway_device_renamed", "params": {"<old name>": "<new name>"}}
//	{"method": "gateway_device_deleted", "params": "<device name>"}
//
// ParseRenamed and ParseDeleted decode those params; Registry.Rename and
// Registry.Delete apply them ("handleDeviceRenaming" decides whether the gateway
// applies renames). After a rename the connector still sends under the old name;
// PlatformName maps it to the new one on the way up, and Lookup maps the new name
// back to the device on the way down. Renaming again chains: A renamed B then C is
// stored as {"A": {"renaming": "C"}}.
//
// # Differences from the Python gateway 3.8
//
//   - Python's rename handler stores renamed[new] = new instead of
//     renamed[old] = new for a first rename, so the connector's data keeps flowing
//     under the old name and the platform creates a new device with the old name.
//     Here the rename maps the connector-side name to the new one.
//   - Python rewrites the whole file synchronously on every add and delete (and,
//     with inactivity checks, on every idle disconnect and reconnect), without a
//     temporary file; here writes are debounced and atomic.
//   - Python drops the whole file when it finds a 2.x entry; here it is read.
//
// Matching saved devices to the configured connectors (by id, then by name, and
// dropping devices whose connector is gone, as Python does) is the gateway's job;
// Device carries both.
package devices
