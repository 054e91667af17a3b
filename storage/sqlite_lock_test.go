package storage

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sqliteRows counts the rows of an open storage, on its own connection.
func sqliteRows(t *testing.T, s *SQLite) int {
	t.Helper()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	var n int
	if err := s.conn.QueryRowContext(context.Background(), "SELECT count(*) FROM iotgw_records").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSQLiteExclusiveLock: while the storage is open no other connection can
// read the database (locking_mode=EXCLUSIVE, no -shm file); once it is closed
// the rows are there for anyone.
func TestSQLiteExclusiveLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	s := openSQLiteT(t, SQLiteConfig{Path: path, FsyncInterval: 5 * time.Millisecond}, nil)
	putRange(t, s, 0, 10, 3)
	if _, err := os.Stat(path + "-shm"); !os.IsNotExist(err) {
		t.Fatalf("a shared-memory file exists (%v): the WAL index should be in the process's memory", err)
	}
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var n int
	err = other.QueryRow("SELECT count(*) FROM iotgw_records").Scan(&n)
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("another connection read the open database: %d rows, err %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.QueryRow("SELECT count(*) FROM iotgw_records").Scan(&n); err != nil || n != 10 {
		t.Fatalf("after Close: %d rows, err %v", n, err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSQLiteT(t, SQLiteConfig{Path: path}, nil)
	defer s.Close()
	checkBatch(t, readCtx(t, s, 100), 0)
}

// TestSQLiteAckDeletesWhileOpen: acknowledged rows are deleted within ackEvery
// without any further Put.
func TestSQLiteAckDeletesWhileOpen(t *testing.T) {
	s := openSQLiteT(t, SQLiteConfig{Path: filepath.Join(t.TempDir(), "data.db")}, nil)
	defer s.Close()
	putRange(t, s, 0, 100, 10)
	if err := s.Ack(readCtx(t, s, 60)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return sqliteRows(t, s) == 40 })
	checkBatch(t, readCtx(t, s, 100), 60)
}

// TestSQLiteDirtyLogIsSynced: Puts that commit on their own goroutine still get
// the write-ahead log fsynced within the interval by the committer.
func TestSQLiteDirtyLogIsSynced(t *testing.T) {
	s := openSQLiteT(t, SQLiteConfig{Path: filepath.Join(t.TempDir(), "data.db"), FsyncInterval: 5 * time.Millisecond}, nil)
	defer s.Close()
	// Each Put finds the committer idle (nothing dirty, no timer set).
	for i := range 3 {
		putRange(t, s, i, i+1, 1)
		waitFor(t, func() bool {
			s.cmu.Lock()
			defer s.cmu.Unlock()
			return !s.dirty && s.commits == uint64(i+1)
		})
	}
}

// TestSQLiteConcurrentPuts: Puts from many goroutines (some committed on the
// caller's goroutine, some grouped by the committer) with a reader at the same
// time: every record is read once, each writer's in its order, and all are there
// after reopen.
func TestSQLiteConcurrentPuts(t *testing.T) {
	for _, iv := range []time.Duration{0, 5 * time.Millisecond} {
		t.Run(iv.String(), func(t *testing.T) {
			cfg := SQLiteConfig{Path: filepath.Join(t.TempDir(), "data.db"), FsyncInterval: iv}
			s := openSQLiteT(t, cfg, nil)
			const writers, per = 6, 150
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := 0; i < per; {
						n := 1 + i%3
						var recs [][]byte
						for j := 0; j < n && i < per; j++ {
							recs = append(recs, []byte(fmt.Sprintf("%d/%d", w, i)))
							i++
						}
						if err := s.Put(context.Background(), recs...); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			check := func(s Storage, ack bool) {
				next := make([]int, writers)
				for got := 0; got < writers*per; {
					b := readCtx(t, s, 1+got%50)
					for _, r := range b.Records {
						var w, i int
						if _, err := fmt.Sscanf(string(r), "%d/%d", &w, &i); err != nil || w >= writers || i != next[w] {
							t.Fatalf("record %q after %v", r, next)
						}
						next[w]++
					}
					got += len(b.Records)
					if ack {
						if err := s.Ack(b); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			check(s, false)
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openSQLiteT(t, cfg, nil)
			defer s.Close()
			if s.Len() != writers*per {
				t.Fatalf("Len after reopen = %d", s.Len())
			}
			check(s, true)
			if s.Len() != 0 {
				t.Fatalf("Len = %d after acknowledging everything", s.Len())
			}
		})
	}
}

// TestSQLiteAckDeletesInChunks: more acknowledged rows than one delete takes
// are deleted in several transactions, all of them and no more.
func TestSQLiteAckDeletesInChunks(t *testing.T) {
	s := openSQLiteT(t, SQLiteConfig{Path: filepath.Join(t.TempDir(), "data.db"), FsyncInterval: 5 * time.Millisecond}, nil)
	defer s.Close()
	const n, acked = 3*delChunk + 100, 2*delChunk + 50
	putRange(t, s, 0, n, 500)
	if err := s.Ack(Batch{First: 0, End: acked}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return sqliteRows(t, s) == n-acked })
	s.cmu.Lock()
	more := s.delMore
	s.cmu.Unlock()
	if more {
		t.Fatal("delMore set after everything acknowledged was deleted")
	}
	checkBatch(t, readCtx(t, s, 10), acked)
}

// TestSQLitePragmas: fsync_interval_ms 0 keeps synchronous=FULL (an fsync per
// commit); above 0 synchronous=NORMAL with a bigger WAL between checkpoints.
func TestSQLitePragmas(t *testing.T) {
	for _, tc := range []struct {
		fsync      time.Duration
		sync, ckpt int
	}{
		{0, 2, 1000},
		{100 * time.Millisecond, 1, 8192},
	} {
		t.Run(tc.fsync.String(), func(t *testing.T) {
			s := openSQLiteT(t, SQLiteConfig{Path: filepath.Join(t.TempDir(), "data.db"), FsyncInterval: tc.fsync}, nil)
			defer s.Close()
			s.cmu.Lock()
			defer s.cmu.Unlock()
			var syncMode, ckpt int
			ctx := context.Background()
			if err := s.conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syncMode); err != nil {
				t.Fatal(err)
			}
			if err := s.conn.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&ckpt); err != nil {
				t.Fatal(err)
			}
			if syncMode != tc.sync || ckpt != tc.ckpt {
				t.Fatalf("synchronous %d, wal_autocheckpoint %d; want %d, %d", syncMode, ckpt, tc.sync, tc.ckpt)
			}
		})
	}
}
