package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a real unixgram socket like systemd's and points NOTIFY_SOCKET at it.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf[:n])
}

func TestMessages(t *testing.T) {
	tests := []struct {
		name string
		send func() error
		want string
	}{
		{"ready", Ready, "READY=1"},
		{"stopping", Stopping, "STOPPING=1"},
		{"watchdog", Watchdog, "WATCHDOG=1"},
		{"status", func() error { return Status("3 connectors, platform connected") }, "STATUS=3 connectors, platform connected"},
		{"status newlines", func() error { return Status("a\nREADY=1\r\nb") }, "STATUS=a READY=1  b"},
		{"raw", func() error { return Notify("READY=1\nSTATUS=up") }, "READY=1\nSTATUS=up"},
	}
	sockets := map[string]func(t *testing.T) string{
		"path": func(t *testing.T) string { return filepath.Join(t.TempDir(), "notify.sock") },
		// An abstract name: what systemd itself uses nowadays. The pid keeps
		// concurrent test binaries apart.
		"abstract": func(t *testing.T) string { return fmt.Sprintf("@iotgw-sdnotify-test-%d", os.Getpid()) },
	}
	for kind, name := range sockets {
		t.Run(kind, func(t *testing.T) {
			c := listen(t, name(t))
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if err := tt.send(); err != nil {
						t.Fatal(err)
					}
					if got := recv(t, c); got != tt.want {
						t.Errorf("got %q, want %q", got, tt.want)
					}
				})
			}
		})
	}
}

func TestReloading(t *testing.T) {
	c := listen(t, filepath.Join(t.TempDir(), "notify.sock"))
	if err := Reloading(); err != nil {
		t.Fatal(err)
	}
	got := recv(t, c)
	first, rest, ok := strings.Cut(got, "\n")
	if first != "RELOADING=1" || !ok || !strings.HasPrefix(rest, "MONOTONIC_USEC=") {
		t.Fatalf("got %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(rest, "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec <= 0 {
		t.Fatalf("bad MONOTONIC_USEC in %q: %v", got, err)
	}
}

func TestUnsetIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	for _, f := range []func() error{Ready, Stopping, Watchdog, Reloading, func() error { return Status("x") }} {
		if err := f(); err != nil {
			t.Errorf("with NOTIFY_SOCKET unset: %v", err)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct{ name, socket, want string }{
		{"vsock", "vsock:2:1234", "unsupported NOTIFY_SOCKET"},
		{"relative", "notify.sock", "unsupported NOTIFY_SOCKET"},
		{"nobody listening", filepath.Join(t.TempDir(), "gone.sock"), "dial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tt.socket)
			err := Ready()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ready() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name, usec, pid string
		want            time.Duration
		ok              bool
	}{
		{"unset", "", "", 0, false},
		{"30s no pid", "30000000", "", 30 * time.Second, true},
		{"our pid", "5000000", self, 5 * time.Second, true},
		{"other pid", "5000000", strconv.Itoa(os.Getpid() + 1), 0, false},
		{"bad pid", "5000000", "x", 0, false},
		{"zero", "0", "", 0, false},
		{"negative", "-5", "", 0, false},
		{"garbage", "30s", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			got, ok := WatchdogInterval()
			if got != tt.want || ok != tt.ok {
				t.Errorf("WatchdogInterval() = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	c := listen(t, filepath.Join(t.TempDir(), "notify.sock"))
	t.Setenv("WATCHDOG_USEC", "100000") // 100 ms: pings every 50 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- KeepAlive(ctx) }()
	for i := 0; i < 3; i++ {
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Fatalf("ping %d: got %q", i, got)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("KeepAlive: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("KeepAlive did not return after cancel")
	}
}

// TestKeepAliveSurvivesErrors: pings go on after a failed send (systemd was busy or
// restarting), and the first error is reported at the end.
func TestKeepAliveSurvivesErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	t.Setenv("NOTIFY_SOCKET", path) // nobody listens yet: the first pings fail
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- KeepAlive(ctx) }()
	time.Sleep(120 * time.Millisecond)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer c.Close()
	if got := recv(t, c); got != "WATCHDOG=1" {
		t.Errorf("after the socket came up: got %q", got)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "dial") {
			t.Errorf("KeepAlive = %v, want the first dial error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("KeepAlive did not return after cancel")
	}
}

func TestKeepAliveDisabled(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	// Returns at once even with a context that never ends.
	if err := KeepAlive(context.Background()); err != nil {
		t.Fatal(err)
	}
}
