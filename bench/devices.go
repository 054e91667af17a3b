package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotgw/iotgw/sim"
)

// A frame is the serial line "T=21.5;seq=17;sent=1763820000123456\n": a
// temperature, the frame's number on its device (from 1) and the time it was
// written in µs since the epoch. The gateway's serial connector turns it into three
// telemetry values; the subscriber finds seq and sent in the published JSON.
const valuesPerFrame = 3

// appendFrame renders one frame.
func appendFrame(b []byte, seq int, sentUS int64) []byte {
	b = append(b, "T="...)
	b = strconv.AppendInt(b, 20+int64(seq%50)/10, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(seq%10), 10)
	b = append(b, ";seq="...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, ";sent="...)
	b = strconv.AppendInt(b, sentUS, 10)
	return append(b, '\n')
}

// device is one simulated serial device: a pseudo-terminal whose slave end the
// gateway opens by its /dev/pts path.
type device struct {
	name   string
	tty    string // the gateway's end
	master *os.File
	slave  *os.File // kept open so that writes before the gateway opens the port are kept
	sent   int      // frames written
	// deadline is the master's write deadline, moved at most every half second:
	// setting it on every write was a large part of the harness's CPU.
	deadline time.Time
}

func openDevice(name string) (*device, error) {
	master, tty, err := sim.OpenPTY()
	if err != nil {
		return nil, err
	}
	return &device{name: name, tty: tty.Name(), master: master, slave: tty}, nil
}

func (d *device) close() {
	_ = d.master.Close()
	_ = d.slave.Close()
}

func openDevices(n int) ([]*device, error) {
	out := make([]*device, 0, n)
	for i := range n {
		d, err := openDevice(fmt.Sprintf("bench-%04d", i))
		if err != nil {
			closeDevices(out)
			return nil, fmt.Errorf("device %d of %d: %w (raise /proc/sys/kernel/pty/max?)", i, n, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func closeDevices(ds []*device) {
	for _, d := range ds {
		d.close()
	}
}

func nowUS() int64 { return time.Now().UnixMicro() }

// writeBurst writes frames to one device as fast as the pty takes them: frames
// are packed into blocks of up to 4 KiB, each frame stamped when its block is
// made. It returns when all are written or ctx is done.
func writeBurst(ctx context.Context, d *device, frames int, written *atomic.Int64) error {
	buf := make([]byte, 0, 4096+64)
	for seq := 1; seq <= frames; {
		buf = buf[:0]
		ts := nowUS()
		for ; seq <= frames && len(buf) < 4096; seq++ {
			buf = appendFrame(buf, seq, ts)
			d.sent++
		}
		n := d.sent
		if err := writeAll(ctx, d, buf); err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		written.Store(int64(n))
	}
	return nil
}

// writeAll writes b to d, giving up when ctx is done (checked about once a second
// while the pty is full).
func writeAll(ctx context.Context, d *device, b []byte) error {
	f := d.master
	for len(b) > 0 {
		if now := time.Now(); d.deadline.Sub(now) < 500*time.Millisecond {
			d.deadline = now.Add(time.Second)
			_ = f.SetWriteDeadline(d.deadline)
		}
		n, err := f.Write(b)
		b = b[n:]
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if os.IsTimeout(err) {
				continue
			}
			return err
		}
	}
	return nil
}

// writePaced writes frames to devices at rate frames/s each, frames per device in
// all. The devices' schedules are spread over one interval so that the load is
// even; a few writer goroutines share the devices. Each frame is stamped just
// before its write. written counts frames written over all devices.
func writePaced(ctx context.Context, ds []*device, rate float64, frames int, written *atomic.Int64) error {
	interval := time.Duration(float64(time.Second) / rate)
	writers := min(len(ds), 4)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []int
			for i := w; i < len(ds); i += writers {
				mine = append(mine, i)
			}
			next := make([]time.Time, len(mine))
			for k, i := range mine {
				next[k] = start.Add(time.Duration(int64(interval) * int64(i) / int64(len(ds))))
			}
			buf := make([]byte, 0, 64)
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			left := len(mine)
			for left > 0 {
				now := time.Now()
				soonest := now.Add(time.Hour)
				for k, i := range mine {
					d := ds[i]
					for d.sent < frames && !next[k].After(now) {
						buf = appendFrame(buf[:0], d.sent+1, nowUS())
						if err := writeAll(ctx, d, buf); err != nil {
							errs <- fmt.Errorf("%s: %w", d.name, err)
							return
						}
						d.sent++
						written.Add(1)
						if d.sent == frames {
							left--
						}
						next[k] = next[k].Add(interval)
						// A writer that fell far behind (the pty was full) restarts its
						// schedule instead of sending a burst.
						if now.Sub(next[k]) > time.Second {
							next[k] = now
						}
					}
					if d.sent < frames && next[k].Before(soonest) {
						soonest = next[k]
					}
				}
				if left == 0 {
					break
				}
				timer.Reset(time.Until(soonest))
				select {
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				case <-timer.C:
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
