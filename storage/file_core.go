package storage

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// This file holds the machinery that the durable types (file and sqlite) share:
// the queue of records accepted by Put and not yet written, the group commit
// hand-off to a single committer goroutine, back-pressure, and the read cursor and
// acknowledgement point.

// MaxRecordSize is the largest record Put accepts (16 MiB). Bigger records are
// rejected with an error, since no platform message can be that large anyway.
const MaxRecordSize = 16 << 20

// maxPendingBytes bounds the records waiting for the committer. A Put that would
// exceed it blocks until the committer takes the queue (back-pressure), so that a
// slow disk slows producers down instead of growing memory without bound.
const maxPendingBytes = 4 << 20

// commitGroup is one group commit: every Put whose records the committer takes
// in one go waits on the same group.
type commitGroup struct {
	done chan struct{} // closed when the group is as durable as promised, or failed
	err  error         // set before done is closed
}

// core is the state shared by the durable types. Sequence numbers are dense:
// the records stored and not acknowledged are exactly [ack, end) plus the queue.
type core struct {
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	failed error // sticky: the storage cannot write any more (fsync error)

	ack    uint64 // records before ack are acknowledged or dropped
	cursor uint64 // next record to read
	end    uint64 // one past the last record written (visible to Read)
	gen    uint64 // bumped whenever the cursor is moved by anything but Read
	wake   chan struct{}

	pend      [][]byte // accepted, not yet taken by the committer (caller's slices)
	pendBytes int
	grp       *commitGroup
	space     chan struct{} // closed when the committer takes the queue
	spare     [][]byte      // the committer's previous queue, reused

	stats Stats
	kick  chan struct{} // wakes the committer; capacity 1
}

func newCore(log *slog.Logger) core {
	if log == nil {
		log = slog.Default()
	}
	return core{
		log:   log,
		wake:  make(chan struct{}),
		space: make(chan struct{}),
		kick:  make(chan struct{}, 1),
	}
}

// poke wakes the committer without blocking.
func (c *core) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// put queues records for the committer and waits for their group commit.
func (c *core) put(ctx context.Context, records [][]byte) error {
	if len(records) == 0 {
		return nil
	}
	size := 0
	for i, r := range records {
		if len(r) > MaxRecordSize {
			return fmt.Errorf("storage: record %d is %d bytes, more than the %d allowed", i, len(r), MaxRecordSize)
		}
		size += len(r) + frameHeader
	}
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.failed != nil {
			err := c.failed
			c.mu.Unlock()
			return err
		}
		if len(c.pend) == 0 || c.pendBytes+size <= maxPendingBytes {
			break
		}
		space := c.space
		c.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	c.pend = append(c.pend, records...)
	c.pendBytes += size
	g := c.grp
	if g == nil {
		g = &commitGroup{done: make(chan struct{})}
		c.grp = g
	}
	c.mu.Unlock()
	c.poke()
	// Not bounded by ctx: the records are queued and will be written; waiting
	// lasts one write (and fsync), and the caller must learn whether it worked.
	<-g.done
	return g.err
}

// take hands the queue to the committer. Called with c.mu held.
func (c *core) take() ([][]byte, *commitGroup) {
	recs, g := c.pend, c.grp
	c.pend, c.grp, c.pendBytes = c.spare[:0], nil, 0
	c.spare = nil
	close(c.space)
	c.space = make(chan struct{})
	return recs, g
}

// giveBack returns a queue taken by take, so that its array is reused.
func (c *core) giveBack(recs [][]byte) {
	clear(recs)
	c.mu.Lock()
	if c.spare == nil {
		c.spare = recs[:0]
	}
	c.mu.Unlock()
}

// finish ends a group commit.
func (g *commitGroup) finish(err error) {
	if g != nil {
		g.err = err
		close(g.done)
	}
}

// advance makes records up to end visible to Read. Called with c.mu held.
func (c *core) advance(end uint64, n int) {
	c.end = end
	c.stats.Put += uint64(n)
	close(c.wake)
	c.wake = make(chan struct{})
}

// dropBelow forgets every record before seq because a limit was reached, and
// returns how many of them were not acknowledged. Called with c.mu held.
func (c *core) dropBelow(seq uint64) uint64 {
	if seq <= c.ack {
		return 0
	}
	n := seq - c.ack
	c.ack = seq
	if c.cursor < seq {
		c.cursor = seq
		c.gen++
	}
	return n
}

// waitData waits until a record is there to read at the cursor and returns the
// cursor, the end of what is written and the cursor generation.
func (c *core) waitData(ctx context.Context) (cur, end, gen uint64, err error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, 0, 0, ErrClosed
		}
		if c.cursor < c.end {
			cur, end, gen = c.cursor, c.end, c.gen
			c.mu.Unlock()
			return cur, end, gen, nil
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, 0, 0, ctx.Err()
		}
	}
}

// moveCursor moves the cursor from what waitData returned to end, unless
// something else moved it meanwhile (then the read must start again).
func (c *core) moveCursor(gen, from, to uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.cursor != from || c.closed {
		return false
	}
	c.cursor = to
	return true
}

// doAck implements Storage.Ack.
func (c *core) doAck(b Batch) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	end := min(b.End, c.end)
	if end > c.ack {
		c.stats.Acked += end - c.ack
		c.ack = end
		if c.cursor < end {
			c.cursor = end
			c.gen++
		}
	}
	c.mu.Unlock()
	c.poke()
	return nil
}

// Rewind implements Storage.
func (c *core) Rewind() {
	c.mu.Lock()
	if c.cursor != c.ack {
		c.cursor = c.ack
	}
	c.gen++
	c.mu.Unlock()
}

// Len implements Storage.
func (c *core) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.end-c.ack) + len(c.pend)
}

// Stats implements Storage.
func (c *core) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// markClosed flags the storage closed and wakes every waiter. It reports
// whether it was open.
func (c *core) markClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closed = true
	close(c.wake)
	c.wake = make(chan struct{})
	close(c.space)
	c.space = make(chan struct{})
	c.poke()
	return true
}
