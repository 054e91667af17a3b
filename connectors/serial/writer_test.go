package serial

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// isWriting reports whether d has a writer goroutine.
func isWriting(d *device) bool {
	d.qmu.Lock()
	defer d.qmu.Unlock()
	return d.writing
}

// within waits for ch to be closed (or to give a value), failing the test after 5 s.
func within(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// bareConnector is a connector with one device that has no port and no reader: only
// its writer runs, so the tests below drive enqueue and writeLoop directly.
func bareConnector(t *testing.T) (*SerialConnector, *device, *recGateway) {
	t.Helper()
	gw := &recGateway{}
	c := &SerialConnector{gw: gw, name: "Serial Connector", id: "id1", log: slog.New(slog.DiscardHandler),
		byName: map[string]*device{}}
	c.stopped.Store(true)
	d := &device{c: c, cfg: &deviceConfig{name: "D"}, log: c.log}
	t.Cleanup(func() { c.Close() })
	return c, d, gw
}

// TestWriterOnDemand: 50 devices on ptys have no writer goroutine while idle, one
// each while they have jobs, and none again once the jobs are done.
func TestWriterOnDemand(t *testing.T) {
	const n = 50
	dir := t.TempDir()
	var devs []string
	var ports []*fakePort
	for i := range n {
		link := filepath.Join(dir, fmt.Sprintf("tty%d", i))
		ports = append(ports, newFakePort(t, link))
		devs = append(devs, fmt.Sprintf(`{"name":"D%d","port":%q,"telemetry":[{"key":"v","type":"int","toByte":-1}],
			"attributeUpdates":[{"attributeOnPlatform":"a","stringToDevice":"a=${a}\n"}]}`, i, link))
	}
	gw := &recGateway{}
	cfg := factoryConfig([]byte(`{"devices":[` + strings.Join(devs, ",") + `]}`))
	c, err := newConnector(gw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	waitFor(t, "all ports open", 20*time.Second, c.IsConnected)
	for _, d := range c.devices {
		if isWriting(d) {
			t.Fatalf("%s has a writer before any job", d.cfg.name)
		}
	}
	idle := runtime.NumGoroutine()

	// While every device's writer is held in a job, there is one more goroutine per
	// device; a second job queued behind it does not start another.
	release := make(chan struct{})
	var ran atomic.Int32
	for _, d := range c.devices {
		for range 2 {
			if !d.enqueue(func(context.Context) { <-release; ran.Add(1) }) {
				t.Fatal("enqueue refused")
			}
		}
	}
	if got := runtime.NumGoroutine(); got < idle+n || got > idle+n+5 {
		t.Fatalf("%d goroutines with %d busy writers, %d idle", got, n, idle)
	}
	close(release)
	waitFor(t, "jobs done", 5*time.Second, func() bool { return ran.Load() == 2*n })
	waitFor(t, "writers gone", 5*time.Second, func() bool { return runtime.NumGoroutine() <= idle })
	for _, d := range c.devices {
		if isWriting(d) {
			t.Fatalf("%s still has a writer", d.cfg.name)
		}
	}

	// Real attribute updates reach every port, and the writers go away again.
	for i := range n {
		c.OnAttributesUpdate(connector.AttributeUpdate{Device: fmt.Sprintf("D%d", i), Data: map[string]any{"a": json.Number(fmt.Sprint(i))}})
	}
	for i, p := range ports {
		if want, got := fmt.Sprintf("a=%d\n", i), p.read(t, len(fmt.Sprintf("a=%d\n", i))); got != want {
			t.Fatalf("D%d got %q, want %q", i, got, want)
		}
	}
	waitFor(t, "writers gone after the updates", 5*time.Second, func() bool { return runtime.NumGoroutine() <= idle })

	// After Close the readers are gone too (TestWriterBeforeOpenAndAfterClose checks
	// that Close itself waits; here a stray runtime goroutine may take a moment).
	c.Close()
	waitFor(t, "readers gone after Close", time.Second, func() bool { return runtime.NumGoroutine() <= idle-n })
}

// TestWriterExitRace: a job queued right after the writer found its queue empty (the
// writer goroutine is still alive, past its check) starts a new writer and runs.
func TestWriterExitRace(t *testing.T) {
	c, d, _ := bareConnector(t)
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := make(chan struct{})
	var exits atomic.Int32
	writerExited = func(w *device) {
		if w != d || exits.Add(1) != 1 {
			return
		}
		// The first writer is past check-and-exit: the queue is empty and writing is
		// false, so this enqueue must start a new writer rather than count on it.
		if isWriting(d) {
			t.Error("writing still true after the writer's exit check")
		}
		if !d.enqueue(func(context.Context) { close(second) }) {
			t.Error("enqueue refused")
		}
	}
	t.Cleanup(func() { writerExited = nil })
	first := make(chan struct{})
	d.enqueue(func(context.Context) { close(first) })
	within(t, "the first job", first)
	within(t, "the job queued as the writer exited", second)
	waitFor(t, "second writer gone", 5*time.Second, func() bool { return !isWriting(d) && exits.Load() == 2 })
}

// TestWriterOrderUnderContention: producers racing the writer's exit never lose a
// job, jobs of the device never overlap, and each producer's jobs run in order.
func TestWriterOrderUnderContention(t *testing.T) {
	c, d, _ := bareConnector(t)
	if err := c.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	const producers, jobs = 4, 2000
	var inFlight, done atomic.Int32
	var mu sync.Mutex
	last := make([]int, producers)
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				job := func(context.Context) {
					if inFlight.Add(1) != 1 {
						t.Error("two jobs of one device at once")
					}
					mu.Lock()
					if last[p] != i {
						t.Errorf("producer %d: job %d ran after job %d", p, i, last[p]-1)
					}
					last[p] = i + 1
					mu.Unlock()
					inFlight.Add(-1)
					done.Add(1)
				}
				for !d.enqueue(job) { // full: wait for the writer, as a caller would retry
					if time.Now().After(deadline) {
						t.Errorf("producer %d: queue still full at job %d", p, i)
						return
					}
					runtime.Gosched()
				}
				if i%16 == 0 {
					time.Sleep(time.Microsecond) // let the writer run dry and exit now and then
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every job", 10*time.Second, func() bool { return done.Load() == producers*jobs })
	waitFor(t, "writer gone", 5*time.Second, func() bool { return !isWriting(d) })
}

// TestWriterBeforeOpenAndAfterClose: a job queued before Open runs once Open is
// called; one queued after Close runs at once, on the caller, with the cancelled
// context; Close waits for a running writer and its queue.
func TestWriterBeforeOpenAndAfterClose(t *testing.T) {
	c, d, _ := bareConnector(t)
	ran := make(chan error, 3)
	d.enqueue(func(ctx context.Context) { ran <- ctx.Err() })
	if isWriting(d) {
		t.Fatal("writer started before Open")
	}
	c.devices = append(c.devices, d) // for Open to start its queued jobs; it has no port
	c.mu.Lock()
	c.opened = true // Open would start d's reader: start only what Open does for writers
	c.runCtx, c.cancel = context.WithCancel(context.Background())
	c.stopped.Store(false)
	c.mu.Unlock()
	d.kick()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("job before Open ran with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("job queued before Open did not run")
	}

	// A writer held in a job when Close starts: Close waits for it and for the job
	// queued behind it, which runs with the cancelled context.
	c.devices = nil // Close need not shut down a port d never had
	hold, held := make(chan struct{}), make(chan struct{})
	d.enqueue(func(ctx context.Context) { close(held); <-hold; ran <- ctx.Err() })
	d.enqueue(func(ctx context.Context) { ran <- ctx.Err() })
	within(t, "the held job", held)
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a writer ran")
	case <-time.After(50 * time.Millisecond):
	}
	close(hold)
	within(t, "Close", closed)
	if len(ran) != 2 {
		t.Fatalf("%d jobs ran before Close returned, want 2", len(ran))
	}
	<-ran
	if err := <-ran; err != context.Canceled {
		t.Fatalf("job queued at Close ran with %v", err)
	}

	// After Close no goroutine may start: the caller runs the job.
	if !d.enqueue(func(ctx context.Context) { ran <- ctx.Err() }) {
		t.Fatal("enqueue refused after Close")
	}
	select {
	case err := <-ran:
		if err != context.Canceled {
			t.Fatalf("job after Close ran with %v", err)
		}
	default:
		t.Fatal("job queued after Close did not run on the caller")
	}
	if isWriting(d) {
		t.Fatal("writing after the caller drained the queue")
	}
}

// TestWriteQueueFull: with the writer busy, the queue takes downlinkQueue jobs and an
// RPC beyond them is answered "Device busy" at once.
func TestWriteQueueFull(t *testing.T) {
	c, gw, _, _ := startConnector(t)
	d := c.byName["SerialDevice1"]
	hold, held := make(chan struct{}), make(chan struct{})
	d.enqueue(func(context.Context) { close(held); <-hold })
	within(t, "the held job", held)
	var ran atomic.Int32
	for i := range downlinkQueue {
		if !d.enqueue(func(context.Context) { ran.Add(1) }) {
			t.Fatalf("job %d refused", i+1)
		}
	}
	c.ServerSideRPC(connector.RPCRequest{Device: "SerialDevice1", ID: 7, Method: "getValue", Params: "x"})
	waitFor(t, "busy reply", 5*time.Second, func() bool { _, _, _, r := gw.snapshot(); return len(r) == 1 })
	if _, _, _, r := gw.snapshot(); r[0] != `SerialDevice1 7 {"error":"Device busy","success":false}` {
		t.Fatalf("reply %s", r[0])
	}
	close(hold)
	waitFor(t, "queued jobs", 5*time.Second, func() bool { return ran.Load() == downlinkQueue && !isWriting(d) })
}
