// Package serialexample embeds the guide's serial configuration (tb_gateway.json and
// custom_serial.json in this folder), so that `iotgw demo` runs exactly the files a
// user reads here.
package serialexample

import "embed"

// Files holds tb_gateway.json and custom_serial.json.
//
//go:embed tb_gateway.json custom_serial.json
var Files embed.FS
