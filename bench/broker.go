package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// brokerChildEnv, when set in the environment, turns this program (or the test
// binary, from TestMain) into the embedded mochi broker: the broker runs in its own
// process so that its CPU is not charged to the harness, as mosquitto's is not.
const brokerChildEnv = "IOTGW_BENCH_MOCHI_CHILD"

// mosquittoPath is Debian's broker.
const mosquittoPath = "/usr/sbin/mosquitto"

// broker is a running broker process and the connect events it reports.
type broker struct {
	kind string // "mosquitto" or "mochi"
	addr string // 127.0.0.1:port
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited

	mu       sync.Mutex
	connects map[string][]time.Time // username → times the broker accepted a CONNECT
	changed  chan struct{}
}

// startBroker starts the broker of kind ("auto": mosquitto when installed, else
// mochi) in its own process, listening on a free loopback port.
func startBroker(kind, dir string, nodelay bool) (*broker, error) {
	if kind == "auto" {
		kind = "mochi"
		if _, err := os.Stat(mosquittoPath); err == nil {
			kind = "mosquitto"
		}
	}
	b := &broker{kind: kind, connects: make(map[string][]time.Time), changed: make(chan struct{}), done: make(chan struct{})}
	switch kind {
	case "mosquitto":
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		b.addr = fmt.Sprintf("127.0.0.1:%d", port)
		// No limit on queued messages, so that a subscriber that falls behind for
		// a moment gets everything (mosquitto drops beyond max_queued_messages).
		conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_inflight_messages 1000
set_tcp_nodelay %t
log_dest stdout
log_type notice
log_type information
connection_messages true
log_timestamp false
`, port, nodelay)
		path := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return nil, fmt.Errorf("mosquitto config: %w", err)
		}
		// mosquitto's stdout is block-buffered on a pipe: stdbuf makes it line-buffered
		// so that connections are seen when they happen.
		b.cmd = exec.Command(mosquittoPath, "-c", path)
		if sb, err := exec.LookPath("stdbuf"); err == nil {
			b.cmd = exec.Command(sb, "-oL", mosquittoPath, "-c", path)
		}
	case "mochi":
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("mochi broker: %w", err)
		}
		b.cmd = exec.Command(self)
		b.cmd.Env = append(os.Environ(), brokerChildEnv+"=1")
	default:
		return nil, fmt.Errorf("unknown broker %q (expected auto, mosquitto or mochi)", kind)
	}
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	b.cmd.Stderr = b.cmd.Stdout
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	listening := make(chan string, 1)
	go func() {
		defer close(b.done)
		b.readLog(out, listening)
		_ = b.cmd.Wait()
	}()
	if kind == "mochi" {
		select {
		case b.addr = <-listening:
		case <-b.done:
			return nil, errors.New("mochi broker exited at start")
		case <-time.After(10 * time.Second):
			b.stop()
			return nil, errors.New("mochi broker did not start")
		}
	}
	// Wait until the port accepts connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			_ = c.Close()
			return b, nil
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("%s does not accept connections on %s: %w", kind, b.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readLog follows the broker's log for accepted connections. mosquitto writes
// "New client connected from 127.0.0.1:43532 as ID (p2, c1, k60, u'USER')."; the
// mochi child writes "listening ADDR" and "connected USER".
func (b *broker) readLog(r io.Reader, listening chan<- string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		now := time.Now()
		user := ""
		switch {
		case strings.HasPrefix(line, "listening "):
			listening <- strings.TrimPrefix(line, "listening ")
			continue
		case strings.HasPrefix(line, "connected "):
			user = strings.TrimPrefix(line, "connected ")
		case strings.Contains(line, "New client connected"):
			i := strings.Index(line, "u'")
			if i < 0 {
				continue
			}
			user = line[i+2:]
			if j := strings.IndexByte(user, '\''); j >= 0 {
				user = user[:j]
			}
		default:
			continue
		}
		b.mu.Lock()
		b.connects[user] = append(b.connects[user], now)
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
	}
}

// waitConnect waits for a connection of user accepted at or after since.
func (b *broker) waitConnect(ctx context.Context, user string, since time.Time) (time.Time, error) {
	for {
		b.mu.Lock()
		for _, t := range b.connects[user] {
			if !t.Before(since) {
				b.mu.Unlock()
				return t, nil
			}
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-b.done:
			return time.Time{}, fmt.Errorf("%s exited", b.kind)
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no connection of %q at the broker: %w", user, ctx.Err())
		}
	}
}

func (b *broker) stop() {
	if b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	}
}

// freePort asks the kernel for a free loopback port (mosquitto needs a number).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// connectLogger is a mochi hook that reports accepted connections on stdout.
type connectLogger struct {
	mqtt.HookBase
	mu sync.Mutex
}

func (h *connectLogger) ID() string { return "bench-connects" }

func (h *connectLogger) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *connectLogger) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *connectLogger) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (h *connectLogger) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Printf("connected %s\n", cl.Properties.Username)
}

// brokerChild runs the embedded mochi broker until SIGTERM; it prints "listening
// ADDR" once it accepts connections.
func brokerChild() int {
	caps := mqtt.NewDefaultServerCapabilities()
	// A subscriber that falls behind must get everything: deep write queues and a
	// large in-flight window instead of mochi's drops.
	caps.MaximumClientWritesPending = 64 << 10
	caps.MaximumInflight = 65535
	caps.ReceiveMaximum = 65535
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(connectLogger), nil); err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		return 1
	}
	l := listeners.NewTCP(listeners.Config{ID: "bench", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		return 1
	}
	if err := srv.Serve(); err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		return 1
	}
	fmt.Printf("listening %s\n", l.Address())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	_ = srv.Close()
	return 0
}
