// Package storage buffers converted data between the connectors and the platform, so
// that nothing is lost while the server or the network is away.
//
// Every type keeps records (opaque byte strings) in the order they were put, hands
// them out in batches, and forgets them only when the batch is acknowledged, which
// the gateway does after the broker acknowledged every message made from it.
package storage

import (
	"context"
	"errors"
)

// Storage is a FIFO of records with a read cursor and an acknowledgement point.
//
// There is one writer side (any number of goroutines calling Put) and one reader
// (the publisher). Records are read in put order. Read moves a cursor forward; Ack
// forgets records up to the end of a batch; Rewind moves the cursor back to the
// oldest record not yet acknowledged, so that unacknowledged batches are read again
// (after a lost connection, or on reopen after a crash).
type Storage interface {
	// Put stores records in order. It returns once they are as durable as the type
	// promises (memory: in memory; file and sqlite: see their docs). It blocks while
	// the storage applies back-pressure, until ctx is done.
	Put(ctx context.Context, records ...[]byte) error
	// Read returns up to max records after those already read. It blocks until at
	// least one is available or ctx is done (then it returns ctx.Err()).
	Read(ctx context.Context, max int) (Batch, error)
	// Ack forgets every record up to the end of b. Batches are acknowledged in the
	// order they were read; acknowledging one acknowledges all before it.
	Ack(b Batch) error
	// Rewind makes the next Read start at the oldest record not yet acknowledged.
	Rewind()
	// Len is the number of records stored and not yet acknowledged.
	Len() int
	// Stats returns counters since open.
	Stats() Stats
	// Close releases files. Records not acknowledged stay for the next open
	// (file, sqlite) or are lost (memory). It is safe to call twice.
	Close() error
}

// Batch is a run of consecutive records handed out by Read.
type Batch struct {
	Records [][]byte
	// First and End are the sequence numbers of the first record and one past the
	// last; they identify the batch to Ack.
	First, End uint64
}

// Stats counts what a storage did.
type Stats struct {
	Put     uint64 // records accepted
	Acked   uint64 // records acknowledged
	Dropped uint64 // records dropped because a size limit was reached (oldest first)
	Expired uint64 // records dropped because their TTL passed (sqlite)
}

// ErrClosed is returned by operations on a closed storage.
var ErrClosed = errors.New("storage: closed")
