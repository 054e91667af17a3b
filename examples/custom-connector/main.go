// Command custom-connector is iotgw with one more connector compiled in: the TCP
// line-protocol connector of package tcpline (type "tcpline"). It is the whole of a
// custom gateway build: the iotgw command line, the built-in connectors, and the
// user's own connector packages, each registering itself from init().
//
//	go build -o iotgw-custom ./examples/custom-connector
//	./iotgw-custom check --config examples/custom-connector/tb_gateway.json
//	./iotgw-custom run   --config examples/custom-connector/tb_gateway.json
//
// docs/custom-connector.md walks through it.
package main

import (
	"os"

	"github.com/iotgw/iotgw/cli"
	// The built-in connectors (serial, ...), as in the stock iotgw binary.
	_ "github.com/iotgw/iotgw/connectors/all"
	// The custom connector: its init() registers type "tcpline" and its converters.
	_ "github.com/iotgw/iotgw/examples/custom-connector/tcpline"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
