package tbmqtt

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/iotgw/iotgw/internal/brokertest"
)

// startMosquitto runs mosquitto on 127.0.0.1:port (0 picks a free port) with a
// generated configuration; the returned func kills it and waits.
func startMosquitto(t *testing.T, bin string, port int) (int, func()) {
	t.Helper()
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\n", port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("mosquitto did not listen on %s: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return port, stop
}

func TestMosquitto(t *testing.T) {
	bin, ok := brokertest.MosquittoPath()
	if !ok {
		t.Skip("mosquitto is not installed (not in PATH nor /usr/sbin): skipping the external-broker test")
	}
	port, stop := startMosquitto(t, bin, 0)
	t.Cleanup(func() { stop() })

	c := newClient(t, Options{
		Host: "127.0.0.1", Port: port,
		Security:   Security{Type: SecurityAccessToken, AccessToken: "any-token"},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	got := make(chan string, 2000)
	c.Subscribe(TopicAttributes, 1, func(_ string, payload []byte) { got <- string(payload) })
	connects := make(chan struct{}, 4)
	c.OnConnect(func(context.Context) { connects <- struct{}{} })
	runClient(t, c)
	waitConnected(t, c, 5*time.Second)
	<-connects

	// A plain broker echoes the gateway's own uplink back on the subscribed topic.
	exchange := func(n int, tag string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pend := make([]*Pending, n)
		for i := range pend {
			pend[i] = c.Publish(TopicAttributes, 1, fmt.Appendf(nil, `{"D":{"%s":%d}}`, tag, i))
		}
		for i, p := range pend {
			if err := p.Wait(ctx); err != nil {
				t.Fatalf("%s publish %d: %v", tag, i, err)
			}
		}
		seen := make(map[string]bool, n)
		for len(seen) < n {
			select {
			case s := <-got:
				seen[s] = true
			case <-ctx.Done():
				t.Fatalf("%s: received %d of %d echoes", tag, len(seen), n)
			}
		}
		for i := range n {
			if want := fmt.Sprintf(`{"D":{"%s":%d}}`, tag, i); !seen[want] {
				t.Errorf("%s: echo %s missing", tag, want)
			}
		}
	}
	exchange(1000, "a")

	// Kill mosquitto and start it again on the same port: the client reconnects and
	// subscribes again.
	stop()
	_, stop = startMosquitto(t, bin, port)
	waitConnected(t, c, 5*time.Second)
	select {
	case <-connects:
	case <-time.After(5 * time.Second):
		t.Fatal("OnConnect did not run after the reconnect")
	}
	if c.Reconnects() != 1 {
		t.Errorf("Reconnects = %d, want 1", c.Reconnects())
	}
	exchange(100, "b")
}
