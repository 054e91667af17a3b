// Package devfilter decides which devices' data the gateway accepts
// ("thingsboard.deviceFiltering" of tb_gateway.json, with its filter file).
//
// The filter file has the shape of the Python gateway's list.json:
//
//	{
//	  "deny":  {"<connector name>": ["<regexp>", ...], ...},
//	  "allow": {"<connector name>": ["<regexp>", ...], ...}
//	}
//
// For a device named N sending through the connector named C:
//
//   - N is denied when it matches one of C's deny patterns;
//   - otherwise, when C has a non-empty allow list, N passes only if it matches one
//     of C's allow patterns;
//   - a connector listed nowhere passes every device.
//
// A pattern must match the whole device name (Python's re.fullmatch, which the
// Python gateway uses): "Temperature Device" denies that name only, not
// "Temperature Device 2"; write "Temperature Device.*" for a prefix. Patterns use
// Go's RE2 syntax, which covers Python's except look-arounds and back-references;
// a pattern that does not compile is an error that names the file and the key.
// Patterns are compiled once at Load, and decisions are cached per (connector,
// device) in a bounded map, so Allowed costs one map lookup on the data path.
//
// # Differences from the Python gateway 3.8
//
//   - In 3.8, send_to_storage passes a ConvertedData object to
//     DeviceFilter.validate_device, which reads data['deviceName']; ConvertedData's
//     __getitem__ knows only "attributes", "telemetry" and "metadata" and raises
//     KeyError for it. The lookup only runs for a connector that appears in the
//     file, so every message of a listed connector raises, send_to_storage logs
//     "Cannot put converted data!" and returns FAILURE: all its devices' data is
//     dropped, whatever the patterns say. Here the patterns decide.
//   - Python's allow list never restricts anything: a device that matches no allow
//     pattern still falls through to "return True". Here an allow list means "only
//     these", which is what its name and the ThingsBoard documentation promise. An
//     empty allow list restricts nothing.
//   - Unknown top-level keys are an error (a misspelt "alow" would otherwise
//     silently let every device through); Python ignores them.
package devfilter
