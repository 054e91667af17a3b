// Command iotgw is the IoT gateway. See `iotgw help` and the README.
package main

import (
	"os"

	"github.com/iotgw/iotgw/cli"
	_ "github.com/iotgw/iotgw/connectors/all"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
