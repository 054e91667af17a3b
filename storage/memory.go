package storage

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// MemoryConfig holds the TB keys of the memory storage.
type MemoryConfig struct {
	// MaxRecords is "max_records_count": when full, the oldest records are dropped.
	MaxRecords int
}

// Memory is the "memory" storage: a bounded ring of records. It survives nothing,
// and when full it drops the oldest records, counts them and logs it.
type Memory struct {
	log *slog.Logger

	mu      sync.Mutex
	ring    [][]byte
	head    uint64 // sequence number of the oldest record held
	tail    uint64 // sequence number of the next record to put
	cursor  uint64 // next record to read
	closed  bool
	stats   Stats
	wake    chan struct{} // closed and replaced when records arrive and waiting is set
	waiting bool          // a Read waits on wake
	lastLog uint64        // dropped count at the last log line
}

// NewMemory returns a memory storage. A MaxRecords below 1 means 100000.
func NewMemory(cfg MemoryConfig, log *slog.Logger) *Memory {
	if cfg.MaxRecords < 1 {
		cfg.MaxRecords = 100000
	}
	if log == nil {
		log = slog.Default()
	}
	return &Memory{log: log, ring: make([][]byte, cfg.MaxRecords), wake: make(chan struct{})}
}

// Put implements Storage. It never blocks: when full it drops the oldest records.
// The records are copied (callers may reuse their buffers once Put returns, as
// with the durable types); a record over MaxRecordSize is refused.
func (m *Memory) Put(ctx context.Context, records ...[]byte) error {
	size := 0
	for i, r := range records {
		if len(r) > MaxRecordSize {
			return fmt.Errorf("storage: record %d is %d bytes, more than the %d allowed", i, len(r), MaxRecordSize)
		}
		size += len(r)
	}
	// One allocation for the whole call, sliced per record below.
	arena := make([]byte, 0, size)
	for _, r := range records {
		arena = append(arena, r...)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	n := uint64(len(m.ring))
	var dropped uint64
	for _, r := range records {
		if m.tail-m.head == n {
			m.ring[m.head%n] = nil
			m.head++
			dropped++
		}
		m.ring[m.tail%n] = arena[:len(r):len(r)]
		arena = arena[len(r):]
		m.tail++
	}
	if m.cursor < m.head {
		m.cursor = m.head
	}
	m.stats.Put += uint64(len(records))
	m.stats.Dropped += dropped
	total := m.stats.Dropped
	logIt := dropped > 0 && (m.lastLog == 0 || total >= 2*m.lastLog)
	if logIt {
		m.lastLog = total
	}
	if m.waiting {
		// Only when a Read waits: a channel per Put would cost an allocation.
		close(m.wake)
		m.wake = make(chan struct{})
		m.waiting = false
	}
	m.mu.Unlock()
	if logIt {
		// Logged at doubling totals so that a long outage does not flood the log.
		m.log.Warn("memory storage full: dropped the oldest records", "dropped_total", total, "max_records_count", n)
	}
	return nil
}

// Read implements Storage.
func (m *Memory) Read(ctx context.Context, max int) (Batch, error) {
	if max < 1 {
		max = 1
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return Batch{}, ErrClosed
		}
		if m.cursor < m.tail {
			n := uint64(len(m.ring))
			end := min(m.tail, m.cursor+uint64(max))
			b := Batch{Records: make([][]byte, 0, end-m.cursor), First: m.cursor, End: end}
			for s := m.cursor; s < end; s++ {
				b.Records = append(b.Records, m.ring[s%n])
			}
			m.cursor = end
			m.mu.Unlock()
			return b, nil
		}
		wake := m.wake
		m.waiting = true
		m.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Batch{}, ctx.Err()
		}
	}
}

// Ack implements Storage.
func (m *Memory) Ack(b Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	n := uint64(len(m.ring))
	for m.head < b.End && m.head < m.tail {
		m.ring[m.head%n] = nil
		m.head++
		m.stats.Acked++
	}
	if m.cursor < m.head {
		m.cursor = m.head
	}
	return nil
}

// Rewind implements Storage.
func (m *Memory) Rewind() {
	m.mu.Lock()
	m.cursor = m.head
	m.mu.Unlock()
}

// Len implements Storage.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int(m.tail - m.head)
}

// Stats implements Storage.
func (m *Memory) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Close implements Storage.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		close(m.wake)
	}
	return nil
}
