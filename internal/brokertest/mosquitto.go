package brokertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Mosquitto is Debian's mosquitto broker run by a test on a free loopback port.
type Mosquitto struct {
	Addr string
	t    testing.TB
	bin  string
	conf string
	cmd  *exec.Cmd
	done chan struct{}
}

// MosquittoPath finds the mosquitto binary (Debian installs it in /usr/sbin, which
// is not always in PATH).
func MosquittoPath() (string, bool) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, true
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", true
	}
	return "", false
}

// StartMosquitto starts mosquitto on 127.0.0.1 with a free port, anonymous access
// allowed, and stops it at the end of the test. It skips the test with a clear
// message when mosquitto is not installed (.ci/run installs it, so CI never skips).
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	bin, ok := MosquittoPath()
	if !ok {
		t.Skip("mosquitto is not installed (apt-get install mosquitto); skipping the test against an external broker")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 0\nmax_queued_messages 0\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Mosquitto{Addr: addr, t: t, bin: bin, conf: conf}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Start starts (or restarts) the broker on its address and waits until it accepts
// connections.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("mosquitto: %v", err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(m.cmd, m.done)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto did not listen on %s: %v", m.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the broker and waits for it (idempotent).
func (m *Mosquitto) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}

// Host returns the broker's host.
func (m *Mosquitto) Host() string { h, _, _ := net.SplitHostPort(m.Addr); return h }

// Port returns the broker's port.
func (m *Mosquitto) Port() int {
	_, p, _ := net.SplitHostPort(m.Addr)
	n, _ := strconv.Atoi(p)
	return n
}
