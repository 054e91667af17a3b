// Package activity tracks device inactivity ("thingsboard.checkingDeviceActivity":
// checkDeviceInactivity, inactivityTimeoutSeconds, inactivityCheckPeriodSeconds).
//
// The gateway calls Tracker.Seen for every message of a device; it is cheap (a
// read-locked map lookup and two atomic operations). Every check period, Run (or
// Check, with a fake clock) looks for devices silent for the timeout and calls
// OnInactive once for each; the gateway then tells the platform the device
// disconnected. The device's next data calls OnActive once, and the gateway
// connects it again. Events happen on transitions only: an inactive device is not
// reported again at the next check, and a device that keeps sending is never
// reported. Seen on a device the tracker does not know starts tracking it as
// active, without an event; devices loaded from connected_devices.json at start
// can be registered that way, so that they go inactive after the timeout when
// they never send.
//
// Callbacks run with the tracker locked, in the order of the transitions, so a
// consumer never sees a device's OnActive before the OnInactive it follows. They
// must be quick (hand slow work to another goroutine) and must not call the
// Tracker.
//
// # Differences from the Python gateway 3.8
//
// In tb_gateway_service.py the checker thread calls del_device for a silent
// device: it publishes the disconnect and also forgets the device (removes it
// from the connected and saved devices and rewrites connected_devices.json), so
// attribute updates and RPCs for it fail until it sends again; its next data
// re-adds it (connect, file rewrite). The last-data time lives in the
// connected-devices entry, which add_device replaces without it, and the checker
// stamps a missing time with "now". Every time the platform connection comes
// back, the gateway calls add_device for every saved device (a connect for each,
// idle or not, resetting their times), and the checker disconnects the idle ones
// again one timeout later: idle devices flap connect/disconnect on every
// reconnect, with two file writes each time. The time is also only written for a
// device already in the connected devices, so data that arrives while the
// platform is unreachable (when add_device is skipped) raises KeyError and is
// lost.
//
// Here the tracker only reports transitions, keeps inactive devices known (the
// registry keeps routing downlink requests to their connector), and its state
// does not depend on the platform connection: after a reconnect the gateway asks
// Inactive(device) and announces only the active devices.
package activity
