package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// gatewayToken is the access token of the gateway under test: the broker's
// connect log names it, which tells the harness when the gateway is connected.
const gatewayToken = "bench-gateway"

// writeConfig writes tb_gateway.json and serial.json for the devices into dir and
// returns the path of tb_gateway.json. It is the ThingsBoard IoT Gateway 3.8.3
// sample configuration (maxPayloadSizeBytes 8196, QoS 1, the sample's storage
// settings) with one serial connector for all devices; with no devices there is no
// connector.
func writeConfig(dir, brokerAddr, storageType string, fsyncMS int, devices []*device) (string, error) {
	host, port, _ := strings.Cut(brokerAddr, ":")
	var portN int
	_, _ = fmt.Sscanf(port, "%d", &portN)
	var st map[string]any
	switch storageType {
	case "memory":
		st = map[string]any{"type": "memory", "read_records_count": 100, "max_records_count": 100000}
	case "file":
		st = map[string]any{"type": "file", "data_folder_path": "./data/", "max_file_count": 10,
			"max_read_records_count": 10, "max_records_per_file": 10000}
	case "sqlite":
		st = map[string]any{"type": "sqlite", "data_file_path": "./data/data.db",
			"messages_ttl_check_in_hours": 1, "messages_ttl_in_days": 7, "max_read_records_count": 10}
	default:
		return "", fmt.Errorf("unknown storage %q (expected memory, file or sqlite)", storageType)
	}
	if storageType != "memory" && fsyncMS >= 0 {
		st["fsync_interval_ms"] = fsyncMS
	}
	connectors := []any{}
	if len(devices) > 0 {
		connectors = append(connectors, map[string]any{
			"name": "Serial Connector", "type": "serial", "configuration": "serial.json", "class": "SerialConnector",
		})
		devs := make([]any, 0, len(devices))
		for _, d := range devices {
			devs = append(devs, map[string]any{
				"name": d.name, "type": "bench", "port": d.tty, "baudrate": 115200,
				"converter": "SerialUplinkConverter", "delimiter": "\n",
				"telemetry": []any{
					map[string]any{"key": "T", "type": "float", "fromDelimiter": "T=", "untilDelimiter": ";"},
					map[string]any{"key": "seq", "type": "int", "fromDelimiter": "seq=", "untilDelimiter": ";"},
					map[string]any{"key": "sent", "type": "int", "fromDelimiter": "sent="},
				},
			})
		}
		serial := map[string]any{"name": "Serial Connector", "logLevel": "INFO", "uplinkQueueSize": 100000, "devices": devs}
		if err := writeJSON(filepath.Join(dir, "serial.json"), serial); err != nil {
			return "", err
		}
	}
	main := map[string]any{
		"thingsboard": map[string]any{
			"host": host, "port": portN, "remoteShell": false, "remoteConfiguration": false,
			"statistics":             map[string]any{"enable": true, "statsSendPeriodInSeconds": 60},
			"deviceFiltering":        map[string]any{"enable": false},
			"checkingDeviceActivity": map[string]any{"checkDeviceInactivity": false},
			"maxPayloadSizeBytes":    8196, "minPackSendDelayMS": 50, "minPackSizeToSend": 500,
			"qos": 1, "security": map[string]any{"type": "accessToken", "accessToken": gatewayToken},
		},
		"storage":    st,
		"connectors": connectors,
	}
	path := filepath.Join(dir, "tb_gateway.json")
	return path, writeJSON(path, main)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// gatewayProc is the gateway under test, a child process.
type gatewayProc struct {
	cmd   *exec.Cmd
	start time.Time
	done  chan struct{}
	log   *os.File
}

// startGateway runs cmdline with {config} replaced by the configuration path
// (through sh, with exec, so that the process measured is the gateway itself), or
// BIN run --config PATH when cmdline is empty. Its output goes to dir/gateway.log.
func startGateway(bin, cmdline, config, dir string, env []string) (*gatewayProc, error) {
	var cmd *exec.Cmd
	if cmdline == "" {
		cmd = exec.Command(bin, "run", "--config", config)
	} else {
		cmd = exec.Command("/bin/sh", "-c", "exec "+strings.ReplaceAll(cmdline, "{config}", shellQuote(config)))
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(dir, "gateway.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	g := &gatewayProc{cmd: cmd, done: make(chan struct{}), log: logf}
	g.start = time.Now()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	go func() {
		defer close(g.done)
		_ = cmd.Wait()
	}()
	return g, nil
}

func (g *gatewayProc) pid() int { return g.cmd.Process.Pid }

func (g *gatewayProc) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// stop asks the gateway to stop (SIGTERM) and kills it after timeout.
func (g *gatewayProc) stop(timeout time.Duration) {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(timeout):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	_ = g.log.Close()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
