package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// scenario is one load shape.
type scenario struct {
	Name    string
	Devices int
	Frames  int     // per device; 0 for idle
	Rate    float64 // frames/s per device; 0 writes as fast as the pty takes them
	Idle    time.Duration
}

// scenarios returns the scenarios at full size or tiny (the CI smoke test);
// fleet, when > 0, replaces the device count of fleet-1000 (full size only).
func scenarios(tiny bool, fleet int) []scenario {
	if tiny {
		return []scenario{
			{Name: "burst-1", Devices: 1, Frames: 2000},
			{Name: "paced-100", Devices: 4, Frames: 200, Rate: 1000},
			{Name: "fleet-1000", Devices: 20, Frames: 5, Rate: 10},
			{Name: "latency", Devices: 1, Frames: 5, Rate: 10},
			{Name: "idle", Idle: time.Second},
		}
	}
	if fleet <= 0 {
		fleet = 1000
	}
	return []scenario{
		{Name: "burst-1", Devices: 1, Frames: 200_000},
		{Name: "paced-100", Devices: 100, Frames: 10_000, Rate: 1000}, // 10 s
		{Name: "fleet-1000", Devices: fleet, Frames: 200, Rate: 10},   // 20 s
		{Name: "latency", Devices: 1, Frames: 300, Rate: 10},          // 30 s
		{Name: "idle", Idle: 30 * time.Second},
	}
}

// Result is one scenario's figures (the JSON output is a list of them).
type Result struct {
	Scenario      string  `json:"scenario"`
	Storage       string  `json:"storage"`
	Broker        string  `json:"broker"`
	Devices       int     `json:"devices"`
	Rate          float64 `json:"rate_per_device"`
	FramesWritten int     `json:"frames_written"`
	// FramesDelivered counts distinct frames at the subscriber; Duplicates the
	// extra copies of at-least-once delivery.
	FramesDelivered int     `json:"frames_delivered"`
	Duplicates      int     `json:"duplicates"`
	ValuesDelivered int     `json:"values_delivered"`
	ValuesLost      int     `json:"values_lost"`
	WriteFPS        float64 `json:"frames_per_s_written"`
	DeliverVPS      float64 `json:"values_per_s_delivered"`
	DeliverFPS      float64 `json:"frames_per_s_delivered"`
	LatencyP50ms    float64 `json:"latency_p50_ms"`
	LatencyP99ms    float64 `json:"latency_p99_ms"`
	LatencyMaxms    float64 `json:"latency_max_ms"`
	CPUSeconds      float64 `json:"cpu_s"`
	// CPUPerMFrames is gateway CPU seconds per million frames (= µs per frame).
	CPUPerMFrames float64 `json:"cpu_s_per_million_frames"`
	// CPUPercent is gateway CPU over the load window, in % of one core.
	CPUPercent float64 `json:"cpu_percent_of_core"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	IdleRSSMB  float64 `json:"idle_rss_mb"`
	ConnectMS  float64 `json:"start_to_connected_ms"`
	// BrokerCPUPercent and HarnessCPUPercent are the broker's and this program's
	// CPU over the load window (devices, subscriber), to see who else used the cores.
	BrokerCPUPercent  float64 `json:"broker_cpu_percent_of_core"`
	HarnessCPUPercent float64 `json:"harness_cpu_percent_of_core"`
	// MachineBusyPercent is how busy all cores together were (/proc/stat), in % of
	// the machine: near 100 means the gateway competed for CPU.
	MachineBusyPercent float64 `json:"machine_busy_percent"`
	Error              string  `json:"error,omitempty"`
}

// runner holds what all scenarios of one run share.
type runner struct {
	broker     *broker
	bin        string // gateway binary (when gatewayCmd is empty)
	gatewayCmd string
	workDir    string
	profileDir string
	fsyncMS    int // fsync_interval_ms of file and sqlite storage; < 0: not written
	log        func(format string, a ...any)
}

// run runs one scenario with one storage type.
func (r *runner) run(ctx context.Context, sc scenario, storageType string) (res Result, err error) {
	res = Result{Scenario: sc.Name, Storage: storageType, Broker: r.broker.kind, Devices: sc.Devices, Rate: sc.Rate}
	dir, err := os.MkdirTemp(r.workDir, sc.Name+"-"+storageType+"-")
	if err != nil {
		return res, err
	}
	devices, err := openDevices(sc.Devices)
	if err != nil {
		return res, err
	}
	defer closeDevices(devices)
	config, err := writeConfig(dir, r.broker.addr, storageType, r.fsyncMS, devices)
	if err != nil {
		return res, err
	}
	sub, err := newSubscriber(r.broker.addr, devices, sc.Frames)
	if err != nil {
		return res, err
	}
	defer sub.close()

	var env []string
	if r.profileDir != "" {
		p := filepath.Join(r.profileDir, sc.Name+"-"+storageType)
		env = append(env, "IOTGW_CPUPROFILE="+p+".cpu.pprof", "IOTGW_MEMPROFILE="+p+".allocs.pprof",
			"IOTGW_MUTEXPROFILE="+p+".mutex.pprof", "IOTGW_BLOCKPROFILE="+p+".block.pprof")
	}
	gw, err := startGateway(r.bin, r.gatewayCmd, config, dir, env)
	if err != nil {
		return res, err
	}
	defer func() {
		gw.stop(20 * time.Second)
		if err != nil {
			if b, rerr := os.ReadFile(filepath.Join(dir, "gateway.log")); rerr == nil && len(b) > 0 {
				err = fmt.Errorf("%w\ngateway log (%s):\n%s", err, dir, tail(b, 2000))
			}
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	connectedAt, err := r.broker.waitConnect(cctx, gatewayToken, gw.start)
	cancel()
	if err != nil {
		return res, fmt.Errorf("gateway did not connect: %w", err)
	}
	res.ConnectMS = ms(connectedAt.Sub(gw.start))

	ttys := make(map[string]bool, len(devices))
	for _, d := range devices {
		ttys[d.tty] = true
	}
	for deadline := time.Now().Add(30 * time.Second); openPorts(gw.pid(), ttys) < len(ttys); {
		if gw.exited() {
			return res, errors.New("gateway exited")
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("gateway opened %d of %d ports in 30 s", openPorts(gw.pid(), ttys), len(ttys))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Let start-up work (first GC cycles, subscriptions) settle before the idle figure.
	time.Sleep(500 * time.Millisecond)
	if rss, _, err := procMem(gw.pid()); err == nil {
		res.IdleRSSMB = mb(rss)
	}

	cpu0, err := procCPU(gw.pid())
	if err != nil {
		return res, err
	}
	brokerCPU0, _ := procCPU(r.broker.cmd.Process.Pid)
	selfCPU0, _ := procCPU(os.Getpid())
	busy0, total0 := machineCPU()
	sampler := sampleRSS(gw.pid())
	defer sampler.end()
	loadStart := time.Now()
	total := sc.Devices * sc.Frames

	if sc.Idle > 0 {
		select {
		case <-time.After(sc.Idle):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		cpu1, err := procCPU(gw.pid())
		if err != nil {
			return res, err
		}
		res.PeakRSSMB = mb(sampler.end())
		if rss, _, err := procMem(gw.pid()); err == nil {
			res.IdleRSSMB = mb(rss)
		}
		res.CPUSeconds = (cpu1 - cpu0).Seconds()
		res.CPUPercent = 100 * res.CPUSeconds / time.Since(loadStart).Seconds()
		return res, nil
	}

	var written atomic.Int64
	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	werr := make(chan error, 1)
	var writeEnd time.Time
	go func() {
		var err error
		if sc.Rate > 0 {
			err = writePaced(wctx, devices, sc.Rate, sc.Frames, &written)
		} else {
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, d := range devices {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var n atomic.Int64
					if e := writeBurst(wctx, d, sc.Frames, &n); e != nil {
						mu.Lock()
						err = e
						mu.Unlock()
					}
					written.Add(n.Load())
				}()
			}
			wg.Wait()
		}
		writeEnd = time.Now()
		werr <- err
	}()

	// Wait for the writers, then for delivery: done when every frame arrived, or
	// when nothing new arrived for quiet (the rest is lost).
	const quiet = 15 * time.Second
	writing := true
	snap, snapAt := takeCPU(gw.pid(), r.broker.cmd.Process.Pid), time.Now()
	lastProgress, lastFrames := time.Now(), 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e := <-werr:
			writing = false
			if e != nil {
				return res, fmt.Errorf("writing frames: %w", e)
			}
		case <-sub.changed:
		case <-tick.C:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		n, _ := sub.snapshot()
		if n != lastFrames || writing {
			lastFrames, lastProgress = n, time.Now()
			// Reading /proc costs the harness CPU: at most every 20 ms, and at the end.
			if lastProgress.Sub(snapAt) >= 20*time.Millisecond || (!writing && n >= total) {
				snap, snapAt = takeCPU(gw.pid(), r.broker.cmd.Process.Pid), lastProgress
			}
		}
		if !writing && (n >= total || time.Since(lastProgress) > quiet) {
			break
		}
		if gw.exited() {
			return res, errors.New("gateway exited during the load")
		}
	}
	// The CPU counters as of the last progress: a quiet wait for lost frames does
	// not dilute them.
	cpu1, brokerCPU1, selfCPU1, busy1, total1 := snap.gw, snap.broker, snap.self, snap.busy, snap.total
	res.PeakRSSMB = mb(sampler.end())

	sub.mu.Lock()
	lat := slices.Clone(sub.latencies)
	res.FramesDelivered, res.Duplicates = sub.frames, sub.dups
	last := sub.last
	sub.mu.Unlock()
	res.FramesWritten = int(written.Load())
	res.ValuesDelivered = res.FramesDelivered * valuesPerFrame
	res.ValuesLost = (total - res.FramesDelivered) * valuesPerFrame
	if d := writeEnd.Sub(loadStart).Seconds(); d > 0 {
		res.WriteFPS = float64(res.FramesWritten) / d
	}
	if d := last.Sub(loadStart).Seconds(); d > 0 && res.FramesDelivered > 0 {
		res.DeliverFPS = float64(res.FramesDelivered) / d
		res.DeliverVPS = float64(res.ValuesDelivered) / d
	}
	res.CPUSeconds = (cpu1 - cpu0).Seconds()
	if res.FramesDelivered > 0 {
		res.CPUPerMFrames = res.CPUSeconds / float64(res.FramesDelivered) * 1e6
	}
	end := last
	if writeEnd.After(end) {
		end = writeEnd
	}
	if d := end.Sub(loadStart).Seconds(); d > 0 {
		res.CPUPercent = 100 * res.CPUSeconds / d
		res.BrokerCPUPercent = 100 * (brokerCPU1 - brokerCPU0).Seconds() / d
		res.HarnessCPUPercent = 100 * (selfCPU1 - selfCPU0).Seconds() / d
		if total1 > total0 {
			res.MachineBusyPercent = 100 * float64(busy1-busy0) / float64(total1-total0)
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.LatencyP50ms = float64(lat[len(lat)*50/100]) / 1000
		res.LatencyP99ms = float64(lat[min(len(lat)-1, len(lat)*99/100)]) / 1000
		res.LatencyMaxms = float64(lat[len(lat)-1]) / 1000
	}
	if res.ValuesLost > 0 {
		res.Error = fmt.Sprintf("%d values lost", res.ValuesLost)
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func mb(b int64) float64         { return float64(b) / (1 << 20) }

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// cpuSnap is the CPU counters the results are computed from.
type cpuSnap struct {
	gw, broker, self time.Duration
	busy, total      int64
}

func takeCPU(gwPID, brokerPID int) cpuSnap {
	var c cpuSnap
	c.gw, _ = procCPU(gwPID)
	c.broker, _ = procCPU(brokerPID)
	c.self, _ = procCPU(os.Getpid())
	c.busy, c.total = machineCPU()
	return c
}
