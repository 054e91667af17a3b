// Package all links every built-in connector and converter into a build. A custom
// gateway imports it beside its own connector packages.
package all

import (
	// The serial connector and its converters (type "serial").
	_ "github.com/iotgw/iotgw/connectors/serial"
)
