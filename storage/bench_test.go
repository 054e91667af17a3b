package storage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	benchRecSize = 200
	benchPerPut  = 64
	benchWriters = 4
	benchReadMax = 100
)

type benchCase struct {
	name  string
	fsync time.Duration
	open  func(b *testing.B, dir string, fsync time.Duration, n int) Storage
}

func benchCases() []benchCase {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	mem := func(b *testing.B, dir string, fsync time.Duration, n int) Storage {
		return NewMemory(MemoryConfig{MaxRecords: max(n, 1000)}, quiet)
	}
	file := func(b *testing.B, dir string, fsync time.Duration, n int) Storage {
		s, err := OpenFile(FileConfig{Dir: dir, MaxFileCount: 100000, MaxRecordsPerFile: 10000, FsyncInterval: fsync}, quiet)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	sqlite := func(b *testing.B, dir string, fsync time.Duration, n int) Storage {
		s, err := OpenSQLite(SQLiteConfig{Path: filepath.Join(dir, "data.db"), FsyncInterval: fsync}, quiet)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	var out []benchCase
	// Memory has no fsync: one case.
	out = append(out, benchCase{"memory/fsync=0", 0, mem})
	for _, fs := range []time.Duration{0, 10 * time.Millisecond} {
		label := "0"
		if fs > 0 {
			label = fs.String()
		}
		out = append(out, benchCase{"file/fsync=" + label, fs, file})
		out = append(out, benchCase{"sqlite/fsync=" + label, fs, sqlite})
	}
	return out
}

func benchBatch() [][]byte {
	recs := make([][]byte, benchPerPut)
	for i := range recs {
		recs[i] = make([]byte, benchRecSize)
		copy(recs[i], fmt.Sprintf("record %d", i))
	}
	return recs
}

// putAll puts n records from benchWriters goroutines, benchPerPut per Put.
func putAll(b *testing.B, s Storage, n int) {
	batch := benchBatch()
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	for range benchWriters {
		wg.Go(func() {
			for {
				k := left.Add(-benchPerPut)
				take := benchPerPut
				if k < 0 {
					take += int(k)
				}
				if take <= 0 {
					return
				}
				if err := s.Put(context.Background(), batch[:take]...); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// readAckAll reads and acknowledges n records in batches of benchReadMax.
func readAckAll(b *testing.B, s Storage, n int) {
	for got := 0; got < n; {
		bt, err := s.Read(context.Background(), benchReadMax)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Ack(bt); err != nil {
			b.Fatal(err)
		}
		got += len(bt.Records)
	}
}

// BenchmarkPut: Puts of 64 records of 200 B from 4 goroutines; b.N is records.
func BenchmarkPut(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			s := bc.open(b, b.TempDir(), bc.fsync, b.N)
			defer s.Close()
			b.SetBytes(benchRecSize)
			b.ResetTimer()
			putAll(b, s, b.N)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkReadAck: reads (100 at a time) and acknowledges records put before
// the timer started; b.N is records.
func BenchmarkReadAck(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			s := bc.open(b, b.TempDir(), bc.fsync, b.N)
			defer s.Close()
			putAll(b, s, b.N)
			b.SetBytes(benchRecSize)
			b.ResetTimer()
			readAckAll(b, s, b.N)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkPutReadAck: the gateway's hot path, 4 writers and one reader that
// acknowledges every batch, at the same time; b.N is records.
func BenchmarkPutReadAck(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			s := bc.open(b, b.TempDir(), bc.fsync, b.N)
			defer s.Close()
			b.SetBytes(benchRecSize)
			b.ResetTimer()
			done := make(chan struct{})
			go func() {
				defer close(done)
				putAll(b, s, b.N)
			}()
			readAckAll(b, s, b.N)
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
