package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/iotgw/iotgw/internal/brokertest"
)

// broker is the part of an embedded or external broker this test needs.
type broker interface {
	Host() string
	Port() int
}

// TestKill9 is the store-and-forward promise end to end: with the platform down, a
// device sends 3,000 frames; the gateway is killed with SIGKILL; the broker and the
// gateway start again, and all 3,000 values arrive, in order. For file and sqlite
// storage, against the embedded broker and Debian's mosquitto.
func TestKill9(t *testing.T) {
	for _, st := range []string{"file", "sqlite"} {
		t.Run(st+"/embedded", func(t *testing.T) {
			b := brokertest.Start(t, "")
			b.Stop()
			obs := func() []brokertest.Msg { return b.Messages("v1/gateway/telemetry") }
			kill9(t, st, b, b.Restart, obs)
		})
		t.Run(st+"/mosquitto", func(t *testing.T) {
			m := brokertest.StartMosquitto(t)
			m.Stop()
			var o *brokertest.Observer
			kill9(t, st, m, func() {
				m.Start()
				o = brokertest.Observe(t, m.Addr)
			}, func() []brokertest.Msg { return o.Messages("v1/gateway/telemetry") })
		})
	}
}

func kill9(t *testing.T, storage string, b broker, startBroker func(), received func() []brokertest.Msg) {
	const n = 3000
	dir := t.TempDir()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	link := filepath.Join(dir, "ttyDEV")
	if err := os.Symlink(tty.Name(), link); err != nil {
		t.Fatal(err)
	}
	storageJSON := `{"type":"file","data_folder_path":"data","max_file_count":10,"max_records_per_file":1000}`
	if storage == "sqlite" {
		storageJSON = `{"type":"sqlite","data_file_path":"data/data.db"}`
	}
	main := fmt.Sprintf(`{"thingsboard":{"host":%q,"port":%d,"security":{"accessToken":"T"}},"storage":%s,
"connectors":[{"name":"S","type":"serial","configuration":"s.json"}]}`, b.Host(), b.Port(), storageJSON)
	conn := fmt.Sprintf(`{"devices":[{"name":"Dev","port":%q,"telemetry":[{"key":"seq","type":"int","toByte":-1}]}]}`, link)
	must(t, os.WriteFile(filepath.Join(dir, "tb_gateway.json"), []byte(main), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "s.json"), []byte(conn), 0o644))
	cfg := filepath.Join(dir, "tb_gateway.json")

	httpAddr := freeAddr(t)
	d := startDaemon(t, "--config", cfg, "--http", httpAddr)
	eventually(t, "the serial port open", 10*time.Second, func() bool {
		return strings.Contains(d.log(), "serial port open")
	})
	for i := 1; i <= n; i++ {
		if _, err := fmt.Fprintf(ptmx, "%d\n", i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "all frames stored", 20*time.Second, func() bool {
		m := scrape(t, httpAddr)
		return m["iotgw_messages_received_total"] == n && m["iotgw_storage_depth"] >= n
	})
	// SIGKILL: no chance to flush or close anything.
	must(t, d.cmd.Process.Signal(syscall.SIGKILL))
	<-d.done
	d.done <- nil

	startBroker()
	startDaemon(t, "--config", cfg)
	var seqs []int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		seqs = seqs[:0]
		for _, m := range received() {
			var p map[string][]struct {
				Values map[string]int64 `json:"values"`
			}
			if json.Unmarshal(m.Payload, &p) == nil {
				for _, e := range p["Dev"] {
					seqs = append(seqs, e.Values["seq"])
				}
			}
		}
		if distinctInts(seqs) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d values arrived after the restart", distinctInts(seqs), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := map[int64]bool{}
	last := int64(0)
	for _, s := range seqs {
		if seen[s] {
			continue
		}
		seen[s] = true
		if s != last+1 {
			t.Fatalf("value %d first seen after %d: order lost", s, last)
		}
		last = s
	}
	t.Logf("%s: all %d values delivered in order after kill -9 (%d received, repeats included)", storage, n, len(seqs))
}

func distinctInts(v []int64) int {
	m := map[int64]bool{}
	for _, x := range v {
		m[x] = true
	}
	return len(m)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
