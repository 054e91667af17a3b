package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/iotgw/iotgw/config"
	"github.com/iotgw/iotgw/connector"
	"github.com/iotgw/iotgw/connectors/serial"
	"github.com/iotgw/iotgw/extensions"
	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/logging"
)

// dryGateway is the connector.Gateway given to factories by `iotgw check`:
// factories only validate, so nothing here is ever called for real.
type dryGateway struct{}

func (dryGateway) SendToStorage(string, string, *connector.ConvertedData) error { return nil }
func (dryGateway) AddDevice(string, string, connector.Connector)                {}
func (dryGateway) DelDevice(string)                                             {}
func (dryGateway) SendRPCReply(string, int, any) error                          { return nil }

func cmdCheck(args []string, e env) int {
	fs := newFlags("check", e)
	path := fs.String("config", defaultConfig(e), "main configuration file")
	extDir := fs.String("extensions", "", "extensions folder (default: extensions/ beside the configuration folder)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg := loadConfig(*path, e, nil)
	if cfg == nil {
		return exitError
	}
	f := runFlags{extensions: *extDir}
	// Factories report unknown keys as warnings: show them.
	log, _ := logging.New(e.stderr, "text", slog.LevelWarn)
	ext := extensions.New(f.extensionsDir(cfg), log)
	failed := false
	var lines []string
	for _, c := range cfg.Connectors {
		if note := classFallback(c, ext); note != "" {
			fmt.Fprintln(e.stderr, "warning: "+cfg.Path+": "+note)
		}
		factory, err := gateway.Resolve(c, ext.ConnectorFactory)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: connector %q: type %q is not supported yet (supported: %s; or put an executable %s/%s in the extensions folder)\n",
				cfg.Path, c.Name, c.Type, strings.Join(connector.Types(), ", "), c.Type, orClass(c.Class))
			failed = true
			continue
		}
		_, err = factory(dryGateway{}, connector.Config{
			Name: c.Name, Type: c.Type, Class: c.Class, ID: c.ID, Path: c.Path, Raw: c.Raw,
			ExtensionsDir: f.extensionsDir(cfg), Logger: log,
			Converters: ext.Converters(connector.BuiltinConverters{Logger: log}, c.Type),
		})
		if err != nil {
			printErr(e.stderr, err)
			failed = true
			continue
		}
		lines = append(lines, fmt.Sprintf("  %-28s type %-8s devices %d  (%s)", c.Name, c.Type, countDevices(c.Raw), c.Path))
	}
	if failed {
		return exitError
	}
	tb := cfg.Thingsboard
	fmt.Fprintf(e.stdout, "%s: OK\n", cfg.Path)
	fmt.Fprintf(e.stdout, "server:     %s:%d (security %s, tls %v, qos %d)\n", tb.Host, tb.Port, tb.Security.Type, tb.TLS, tb.QoS)
	fmt.Fprintf(e.stdout, "storage:    %s\n", describeStorage(cfg.Storage))
	fmt.Fprintf(e.stdout, "connectors: %d\n", len(cfg.Connectors))
	for _, l := range lines {
		fmt.Fprintln(e.stdout, l)
	}
	return exitOK
}

func orClass(c string) string {
	if c == "" {
		return "<class>"
	}
	return c
}

func countDevices(raw []byte) int {
	var v struct {
		Devices []json.RawMessage `json:"devices"`
	}
	_ = json.Unmarshal(raw, &v)
	return len(v.Devices)
}

func describeStorage(s config.Storage) string {
	switch s.Type {
	case "file":
		return fmt.Sprintf("file in %s (%d files × %d records)", s.DataFolderPath, s.MaxFileCount, s.MaxRecordsPerFile)
	case "sqlite":
		return fmt.Sprintf("sqlite %s (ttl %d days, size limit %d MB)", s.DataFilePath, s.MessagesTTLInDays, s.SizeLimitMB)
	}
	return fmt.Sprintf("memory (%d records)", s.MaxRecordsCount)
}

func cmdConvert(args []string, e env) int {
	fs := newFlags("convert", e)
	path := fs.String("config", "", "serial connector configuration file (e.g. custom_serial.json)")
	device := fs.String("device", "", "device name (default: the first device)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(e.stderr, "iotgw convert: --config CONNECTOR.json is required")
		return exitUsage
	}
	raw, err := config.LoadConnectorFile(*path)
	if err != nil {
		printErr(e.stderr, err)
		return exitError
	}
	log, _ := logging.New(e.stderr, "text", slog.LevelWarn)
	if err := serial.ConvertStream(context.Background(), *path, raw, *device, e.stdin, e.stdout, log); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return exitOK
		}
		printErr(e.stderr, err)
		return exitError
	}
	return exitOK
}

// classFallback explains when a connector entry names a class that is neither built
// in nor in the extensions folder, so that the type's built-in class runs instead
// (Python configs name their own class for the serial type).
func classFallback(c config.Connector, ext *extensions.Extensions) string {
	if c.Class == "" {
		return ""
	}
	if _, ok := connector.Lookup(c.Type, c.Class); ok {
		return ""
	}
	if _, ok := ext.ConnectorFactory(c.Type, c.Class); ok {
		return ""
	}
	def, ok := connector.DefaultClass(c.Type)
	if !ok {
		return ""
	}
	return fmt.Sprintf("connectors[%s].class: %q is not built in nor in the extensions folder; the built-in %s runs instead", c.Name, c.Class, def)
}
