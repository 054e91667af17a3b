package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/iotgw/iotgw/storage"
	"github.com/iotgw/iotgw/tbmqtt"
)

// flight is one storage batch whose messages were published and await their acks.
type flight struct {
	batch   storage.Batch
	pending []*tbmqtt.Pending
	msgs    int
	values  int
	sent    time.Time
}

// publish moves records from storage to the platform until ctx is done. A batch is
// acknowledged to storage only after the broker acknowledged every message made
// from it; when the link drops, storage is rewound and the unacknowledged batches
// are sent again after the reconnect (at least once, in order).
func (g *Gateway) publish(ctx context.Context) {
	b := newBatcher(g.maxPayload())
	epoch := ^uint64(0)
	for ctx.Err() == nil {
		if err := g.mqtt.WaitConnected(ctx); err != nil {
			return
		}
		if ep := g.mqtt.Reconnects(); ep != epoch {
			if !g.announce(ctx) {
				g.pause(ctx)
				continue
			}
			epoch = ep
		}
		b.maxSize = g.maxPayload()
		if !g.pump(ctx, b, epoch) {
			g.stats.PublishFailures.Add(1)
			g.store.Rewind()
			g.pause(ctx)
		}
	}
}

// pause waits a little after a failure so that a broken link is not hammered
// before the client notices it.
func (g *Gateway) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(100 * time.Millisecond):
	}
}

func (g *Gateway) maxPayload() int {
	n := g.cfg.Thingsboard.MaxPayloadSizeBytes
	if n <= 0 {
		n = 64 << 10
	}
	if s := int(g.sessionMaxPayload.Load()); s > 0 && s < n {
		n = s
	}
	return n
}

// announce sends v1/gateway/connect for every known device (after each connect to
// the platform) and waits for the acks.
func (g *Gateway) announce(ctx context.Context) bool {
	qos := byte(g.cfg.Thingsboard.QoS)
	var pend []*tbmqtt.Pending
	for _, d := range g.knownDevices() {
		pend = append(pend, g.mqtt.Publish(tbmqtt.TopicConnect, qos, tbmqtt.ConnectPayload(d[0], d[1])))
	}
	for _, p := range pend {
		if waitPending(ctx, p) != nil {
			return false
		}
	}
	if len(pend) > 0 {
		g.log.Info("devices announced to the platform", "devices", len(pend))
	}
	return true
}

// waitPending waits for an ack; when ctx is done it still waits up to a second so
// that a stop does not throw away acks that are about to arrive.
func waitPending(ctx context.Context, p *tbmqtt.Pending) error {
	select {
	case <-p.Done():
		return p.Wait(ctx)
	case <-ctx.Done():
	}
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	return p.Wait(c)
}

// A small batch published less than linger ago makes the next read wait for the
// rest of linger, so that records trickling in from many slow devices go out a few
// per message instead of one message per record (each message costs a publish, a
// PUBACK and wake-ups on both sides). A lone frame after a quiet spell, and every
// burst (full batches), go out at once; the added latency is at most linger.
const (
	linger     = time.Millisecond
	smallBatch = 32
)

// lingerDone waits until t; it reports false when ctx ended first.
func lingerDone(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// pump reads batches and publishes them, keeping up to InflightBatches batches
// awaiting acks. It returns false when a publish or a storage read failed, and true
// when ctx ended or the platform connection changed (the caller announces the
// devices on the new connection first).
func (g *Gateway) pump(ctx context.Context, b *batcher, epoch uint64) bool {
	readCtx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	go func() {
		select {
		case <-g.connected:
			cancelRead()
		case <-readCtx.Done():
		}
	}()
	window := make(chan *flight, g.opts.InflightBatches)
	var failed bool
	var failMu sync.Mutex
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		for f := range window {
			failMu.Lock()
			bad := failed
			failMu.Unlock()
			if !bad {
				for _, p := range f.pending {
					if err := waitPending(ctx, p); err != nil {
						if !errors.Is(err, context.Canceled) {
							g.log.Warn("publish not acknowledged; the batch will be sent again", "err", err)
						}
						bad = true
						break
					}
				}
			}
			if bad {
				// Later batches must not be acked either: an ack covers all before it.
				failMu.Lock()
				failed = true
				failMu.Unlock()
				cancelRead()
				continue
			}
			g.observeLatency(time.Since(f.sent))
			if err := g.store.Ack(f.batch); err != nil && !errors.Is(err, storage.ErrClosed) {
				g.log.Error("storage ack failed", "err", err)
			}
			g.stats.MessagesSent.Add(uint64(f.msgs))
			g.stats.ValuesSent.Add(uint64(f.values))
			g.stats.RecordsSent.Add(uint64(len(f.batch.Records)))
		}
	}()

	qos := byte(g.cfg.Thingsboard.QoS)
	var lastSmall time.Time // when the last batch, a small one, was published
	for {
		if !lastSmall.IsZero() && !lingerDone(readCtx, lastSmall.Add(linger)) {
			break
		}
		if g.mqtt.Reconnects() != epoch {
			break
		}
		batch, err := g.store.Read(readCtx, g.opts.BatchSize)
		if err != nil {
			if readCtx.Err() == nil {
				// A storage that cannot be read (I/O error, file gone) must not
				// spin: count it as a failure (rewind and pause), log it at most
				// every 10 s.
				if now := time.Now().UnixNano(); now-g.readErrLogged.Load() > int64(10*time.Second) {
					g.readErrLogged.Store(now)
					g.log.Error("storage read failed; retrying", "err", err)
				}
				failMu.Lock()
				failed = true
				failMu.Unlock()
			}
			break
		}
		f := &flight{batch: batch, sent: time.Now()}
		lastSmall = time.Time{}
		if len(batch.Records) < smallBatch {
			lastSmall = f.sent
		}
		b.out = b.out[:0]
		for _, raw := range batch.Records {
			r, err := decodeRecord(raw)
			if err != nil {
				g.stats.DroppedInvalid.Add(1)
				g.log.Error("skipping a malformed storage record", "len", len(raw))
				continue
			}
			switch r.kind {
			case recData:
				b.add(r)
			case recConnect:
				b.flush(tbmqtt.TopicTelemetry, tbmqtt.TopicAttributes)
				b.out = append(b.out, message{topic: tbmqtt.TopicConnect, payload: tbmqtt.ConnectPayload(string(r.device), string(r.deviceType))})
			case recDisconnect:
				b.flush(tbmqtt.TopicTelemetry, tbmqtt.TopicAttributes)
				b.out = append(b.out, message{topic: tbmqtt.TopicDisconnect, payload: tbmqtt.DisconnectPayload(string(r.device))})
			}
		}
		b.flush(tbmqtt.TopicTelemetry, tbmqtt.TopicAttributes)
		throttled := false
		for _, m := range b.out {
			// Stay within the rate limits the platform announced: waiting keeps the
			// data in storage, where exceeding them would close the session.
			if err := g.throttle(readCtx, m.topic, m.values); err != nil {
				throttled = true // cut short: the batch is not acked and is sent again
				break
			}
			f.pending = append(f.pending, g.mqtt.Publish(m.topic, qos, m.payload))
			f.msgs++
			f.values += m.values
		}
		clear(b.out)
		if throttled {
			break
		}
		// Always hand a published batch to the acker (it drains the window to the
		// end), so that its acks are counted and the storage is acknowledged.
		window <- f
		if readCtx.Err() != nil {
			break
		}
	}
	close(window)
	<-ackerDone
	failMu.Lock()
	defer failMu.Unlock()
	return !failed
}
