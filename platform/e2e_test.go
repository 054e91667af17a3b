package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/gatewaytest"

	"github.com/iotgw/iotgw/config"
	_ "github.com/iotgw/iotgw/connectors/serial" // registers the serial connector
	"github.com/iotgw/iotgw/gateway"
	"github.com/iotgw/iotgw/platform"
	"github.com/iotgw/iotgw/sim"
)

// guideDevice is the serial device of the ThingsBoard guide, on port PORT.
const guideDevice = `{
  "name": "Custom serial connector",
  "logLevel": "INFO",
  "uplinkQueueSize": 100000,
  "devices": [{
    "name": "SerialDevice1", "type": "default", "port": PORT, "baudrate": 9600,
    "converter": "SerialUplinkConverter", "downlink_converter": "SerialDownlinkConverter",
    "telemetry": [{"type": "float", "key": "humidity", "untilDelimiter": "\r"}],
    "attributes": [{"key": "SerialNumber", "type": "string", "fromByte": 4, "toByte": -1}],
    "attributeUpdates": [{"attributeOnPlatform": "attr1", "stringToDevice": "value = ${attr1}\n"}],
    "serverSideRpc": [
      {"method": "setValue", "type": "int", "withResponse": true, "responseType": "string",
       "responseUntilDelimiter": "\r", "responseTimeoutSec": 5},
      {"method": "getValue", "type": "string", "withResponse": false}
    ]
  }]
}`

// TestGatewayEndToEnd runs the real gateway with the serial connector between
// the simulated serial device and the platform emulator: the device appears,
// its telemetry and attributes are stored, an attribute update reaches the
// device as the configured text line, and an RPC posted to the platform
// reaches the device and its reply comes back.
func TestGatewayEndToEnd(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "ttySIM")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	// The simulated device: 4 frames/s.
	var stats sim.SerialStats
	simCtx, simStop := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	go func() { simDone <- sim.RunSerial(simCtx, sim.SerialOptions{Link: link, Rate: 4, Stats: &stats}) }()
	defer func() {
		simStop()
		if err := <-simDone; err != nil {
			t.Errorf("sim: %v", err)
		}
	}()
	waitFor(t, "the simulator's link", func() bool { _, err := os.Stat(link); return err == nil })

	p, err := platform.New(platform.Options{MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Tokens: []string{"E2E_TOKEN"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	_, port, _ := strings.Cut(p.MQTTAddr(), ":")
	gwJSON := fmt.Sprintf(`{
  "thingsboard": {"host": "127.0.0.1", "port": %s, "security": {"type": "accessToken", "accessToken": "E2E_TOKEN"}},
  "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 100000},
  "connectors": [{"name": "Serial Connector", "type": "serial", "configuration": "custom_serial.json", "class": "SerialConnector"}]
}`, port)
	portJSON, _ := json.Marshal(link)
	writeFile(t, filepath.Join(dir, "tb_gateway.json"), gwJSON)
	writeFile(t, filepath.Join(dir, "custom_serial.json"), strings.Replace(guideDevice, "PORT", string(portJSON), 1))
	cfg, _, err := config.Load(filepath.Join(dir, "tb_gateway.json"))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	gw, err := gateway.New(cfg, gateway.Options{Logger: logger, Version: "e2e"})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	defer gatewaytest.Run(t, gw)()

	// The device appears, connected, with telemetry from the simulator.
	waitFor(t, "SerialDevice1 with 3 humidity values", func() bool {
		tel, ok := p.Telemetry("SerialDevice1", "humidity", 10)
		return ok && len(tel["humidity"]) >= 3
	})
	var dev platform.Device
	for _, d := range p.Devices() {
		if d.Name == "SerialDevice1" {
			dev = d
		}
	}
	if !dev.Connected || dev.Type != "default" {
		t.Errorf("device = %+v, want connected, type default", dev)
	}
	tel, _ := p.Telemetry("SerialDevice1", "humidity", 10)
	for _, pt := range tel["humidity"] {
		h, err := strconv.ParseFloat(string(pt.Value), 64)
		if err != nil || h < 30 || h > 70 || time.Since(time.UnixMilli(pt.TS)) > time.Minute {
			t.Errorf("humidity point %+v: want a number in 30..70 stamped now", pt)
		}
	}
	// fromByte 4, toByte -1 on "48\r2430947595\n" (SPEC §4).
	waitFor(t, "the SerialNumber attribute", func() bool {
		a, _ := p.Attributes("SerialDevice1")
		return string(a.Client["SerialNumber"]) == `"430947595"`
	})

	// Attribute update → "value = 25\n" on the device.
	if err := p.UpdateAttributes("SerialDevice1", map[string]json.RawMessage{"attr1": json.RawMessage("25")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the attribute update line on the device", func() bool { return stats.Lines.Load() == 1 })

	// RPC setValue(25): the device gets 0x19 and answers "ok:19\r\n"; the
	// gateway parses it up to "\r". A telemetry frame that crosses the RPC on
	// the wire is taken for the response (as with a real device): try again
	// once in that case.
	var reply platform.RPCReply
	for attempt := 1; attempt <= 2; attempt++ {
		reply, err = p.RPC(ctx, "SerialDevice1", "setValue", json.RawMessage("25"), 8*time.Second)
		if err != nil {
			t.Fatalf("RPC: %v", err)
		}
		if string(reply.Data) == `{"result":"ok:19"}` {
			break
		}
		t.Logf("attempt %d: reply %s (a telemetry frame crossed the RPC)", attempt, reply.Data)
	}
	if string(reply.Data) != `{"result":"ok:19"}` || reply.Device != "SerialDevice1" {
		t.Errorf("RPC reply = %+v %s, want data {\"result\":\"ok:19\"}", reply, reply.Data)
	}
	if stats.RPCs.Load() == 0 {
		t.Error("the simulated device saw no RPC write")
	}

	// An unknown method is answered by the connector.
	reply, err = p.RPC(ctx, "SerialDevice1", "nope", nil, 8*time.Second)
	if err != nil || string(reply.Data) != `{"error":"Method not found","success":false}` {
		t.Errorf("unknown method: %s, %v", reply.Data, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
