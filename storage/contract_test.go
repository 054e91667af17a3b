package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuf collects log output so that tests can check what was logged.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(buf *logBuf) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// impl opens one storage type in dir. small asks for the small limits of the
// limit test; the same dir reopens the same storage.
type impl struct {
	name    string
	durable bool
	open    func(t testing.TB, dir string, small bool, log *slog.Logger) Storage
}

var impls = []impl{
	{name: "memory", open: func(t testing.TB, dir string, small bool, log *slog.Logger) Storage {
		n := 100000
		if small {
			n = 100
		}
		return NewMemory(MemoryConfig{MaxRecords: n}, log)
	}},
	{name: "file", durable: true, open: func(t testing.TB, dir string, small bool, log *slog.Logger) Storage {
		cfg := FileConfig{Dir: filepath.Join(dir, "file"), MaxFileCount: 10, MaxRecordsPerFile: 1000}
		if small {
			cfg.MaxFileCount, cfg.MaxRecordsPerFile = 3, 40
		}
		s, err := OpenFile(cfg, log)
		if err != nil {
			t.Fatalf("OpenFile: %v", err)
		}
		return s
	}},
	{name: "sqlite", durable: true, open: func(t testing.TB, dir string, small bool, log *slog.Logger) Storage {
		cfg := SQLiteConfig{Path: filepath.Join(dir, "db", "data.db")}
		if small {
			cfg.SizeLimitBytes = 256 << 10
		}
		s, err := OpenSQLite(cfg, log)
		if err != nil {
			t.Fatalf("OpenSQLite: %v", err)
		}
		return s
	}},
}

func rec(i int) []byte { return []byte(fmt.Sprintf("record-%06d", i)) }

// putRange puts records [from, to) in Puts of per records.
func putRange(t testing.TB, s Storage, from, to, per int) {
	t.Helper()
	for i := from; i < to; i += per {
		var recs [][]byte
		for j := i; j < min(i+per, to); j++ {
			recs = append(recs, rec(j))
		}
		if err := s.Put(context.Background(), recs...); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
}

func readCtx(t testing.TB, s Storage, max int) Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := s.Read(ctx, max)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return b
}

// readAll reads every record stored and not yet read, in batches of max.
func readAll(t testing.TB, s Storage, max int) []Batch {
	t.Helper()
	var out []Batch
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		b, err := s.Read(ctx, max)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		out = append(out, b)
	}
}

// checkBatch checks that b holds records want..want+len-1 and is consistent.
func checkBatch(t testing.TB, b Batch, want int) {
	t.Helper()
	if int(b.End-b.First) != len(b.Records) {
		t.Fatalf("batch [%d,%d) has %d records", b.First, b.End, len(b.Records))
	}
	for i, r := range b.Records {
		if !bytes.Equal(r, rec(want+i)) {
			t.Fatalf("record %d of batch [%d,%d) = %q, want %q", i, b.First, b.End, r, rec(want+i))
		}
	}
}

func forEach(t *testing.T, fn func(t *testing.T, im impl, dir string)) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			t.Parallel()
			fn(t, im, t.TempDir())
		})
	}
}

func TestContract(t *testing.T) {
	tests := []struct {
		name        string
		durableOnly bool
		run         func(t *testing.T, im impl, dir string)
	}{
		{"OrderAndBatches", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			defer s.Close()
			putRange(t, s, 0, 1000, 7)
			if got := s.Len(); got != 1000 {
				t.Fatalf("Len = %d, want 1000", got)
			}
			next := 0
			var seq uint64
			for next < 1000 {
				b := readCtx(t, s, 64)
				if len(b.Records) == 0 || len(b.Records) > 64 {
					t.Fatalf("batch of %d records", len(b.Records))
				}
				if next > 0 && b.First != seq {
					t.Fatalf("batch starts at %d, want %d", b.First, seq)
				}
				checkBatch(t, b, next)
				next += len(b.Records)
				seq = b.End
			}
			if st := s.Stats(); st.Put != 1000 || st.Dropped != 0 {
				t.Fatalf("Stats = %+v", st)
			}
		}},
		{"Ack", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			defer s.Close()
			putRange(t, s, 0, 100, 100)
			b1 := readCtx(t, s, 30)
			b2 := readCtx(t, s, 30)
			if err := s.Ack(b1); err != nil {
				t.Fatal(err)
			}
			if got := s.Len(); got != 70 {
				t.Fatalf("Len after one ack = %d, want 70", got)
			}
			if err := s.Ack(b2); err != nil {
				t.Fatal(err)
			}
			if got := s.Len(); got != 40 {
				t.Fatalf("Len after two acks = %d, want 40", got)
			}
			// Acknowledging an old batch again changes nothing.
			if err := s.Ack(b1); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Acked != 60 || s.Len() != 40 {
				t.Fatalf("Stats = %+v, Len = %d", st, s.Len())
			}
			b3 := readCtx(t, s, 100)
			checkBatch(t, b3, 60)
			if err := s.Ack(b3); err != nil {
				t.Fatal(err)
			}
			if s.Len() != 0 || s.Stats().Acked != 100 {
				t.Fatalf("Len = %d, Stats = %+v", s.Len(), s.Stats())
			}
		}},
		{"AckSkipsBatches", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			defer s.Close()
			putRange(t, s, 0, 50, 10)
			readCtx(t, s, 10)
			readCtx(t, s, 10)
			b3 := readCtx(t, s, 10)
			// Acknowledging the third acknowledges the two before it.
			if err := s.Ack(b3); err != nil {
				t.Fatal(err)
			}
			if s.Len() != 20 {
				t.Fatalf("Len = %d, want 20", s.Len())
			}
			s.Rewind()
			checkBatch(t, readCtx(t, s, 100), 30)
		}},
		{"Rewind", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			defer s.Close()
			putRange(t, s, 0, 100, 9)
			a := readCtx(t, s, 25)
			b := readCtx(t, s, 25)
			readCtx(t, s, 25)
			if err := s.Ack(a); err != nil {
				t.Fatal(err)
			}
			s.Rewind()
			again := readCtx(t, s, 25)
			if again.First != b.First || again.End != b.End {
				t.Fatalf("after Rewind read [%d,%d), want [%d,%d)", again.First, again.End, b.First, b.End)
			}
			checkBatch(t, again, 25)
			// Rewind with nothing acknowledged goes back to the start.
			s.Rewind()
			s.Rewind()
			checkBatch(t, readCtx(t, s, 10), 25)
		}},
		{"Limits", false, func(t *testing.T, im impl, dir string) {
			var logs logBuf
			s := im.open(t, dir, true, testLogger(&logs))
			defer s.Close()
			// 1 KiB records so that the sqlite size limit (256 KiB) is reached too.
			pad := strings.Repeat("x", 1000)
			const n = 2000
			for i := 0; i < n; i += 10 {
				var recs [][]byte
				for j := i; j < i+10; j++ {
					recs = append(recs, append(rec(j), pad...))
				}
				if err := s.Put(context.Background(), recs...); err != nil {
					t.Fatal(err)
				}
			}
			kept := s.Len()
			st := s.Stats()
			if kept == 0 || kept >= n {
				t.Fatalf("Len = %d after %d puts past the limit", kept, n)
			}
			if st.Dropped != uint64(n-kept) {
				t.Fatalf("Dropped = %d, want %d (kept %d)", st.Dropped, n-kept, kept)
			}
			// What is left is the newest records, in order.
			want := n - kept
			for _, b := range readAll(t, s, 100) {
				for _, r := range b.Records {
					if !bytes.HasPrefix(r, rec(want)) {
						t.Fatalf("read %.13q, want %q", r, rec(want))
					}
					want++
				}
			}
			if want != n {
				t.Fatalf("read up to %d, want %d", want, n)
			}
			if !strings.Contains(logs.String(), "dropped") {
				t.Fatalf("no log line about dropped records:\n%s", logs.String())
			}
		}},
		{"ReopenKeepsUnacked", true, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			putRange(t, s, 0, 100, 10)
			a := readCtx(t, s, 30)
			if err := s.Ack(a); err != nil {
				t.Fatal(err)
			}
			readCtx(t, s, 20) // read, never acknowledged
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			s = im.open(t, dir, false, nil)
			defer s.Close()
			if got := s.Len(); got != 70 {
				t.Fatalf("Len after reopen = %d, want 70", got)
			}
			b := readCtx(t, s, 100)
			checkBatch(t, b, 30)
			if len(b.Records) != 70 {
				t.Fatalf("read %d records after reopen, want 70", len(b.Records))
			}
			putRange(t, s, 100, 110, 3)
			b2 := readCtx(t, s, 100)
			if b2.First != b.End {
				t.Fatalf("new records start at %d, want %d", b2.First, b.End)
			}
			checkBatch(t, b2, 100)
			if err := s.Ack(b2); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = im.open(t, dir, false, nil)
			defer s.Close()
			if s.Len() != 0 {
				t.Fatalf("Len after all acked and reopened = %d", s.Len())
			}
			putRange(t, s, 110, 120, 10)
			checkBatch(t, readCtx(t, s, 100), 110)
		}},
		{"ReadBlocksUntilPut", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			defer s.Close()
			got := make(chan Batch, 1)
			go func() {
				b, err := s.Read(context.Background(), 10)
				if err != nil {
					t.Errorf("Read: %v", err)
				}
				got <- b
			}()
			select {
			case b := <-got:
				t.Fatalf("Read returned %+v before any Put", b)
			case <-time.After(50 * time.Millisecond):
			}
			putRange(t, s, 0, 3, 3)
			select {
			case b := <-got:
				checkBatch(t, b, 0)
			case <-time.After(5 * time.Second):
				t.Fatal("Read still blocked after Put")
			}
		}},
		{"ReadHonoursContext", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			if _, err := s.Read(ctx, 10); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Read = %v, want DeadlineExceeded", err)
			}
		}},
		{"CloseUnblocksRead", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			errc := make(chan error, 1)
			go func() {
				_, err := s.Read(context.Background(), 10)
				errc <- err
			}()
			time.Sleep(30 * time.Millisecond)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("Read = %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not unblock Read")
			}
			if err := s.Put(context.Background(), rec(1)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Put after Close = %v, want ErrClosed", err)
			}
		}},
		{"ConcurrentPuts", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			defer s.Close()
			const writers, per = 4, 500
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := 0; i < per; i += 5 {
						var recs [][]byte
						for j := i; j < i+5; j++ {
							recs = append(recs, []byte(fmt.Sprintf("%d:%d", w, j)))
						}
						if err := s.Put(context.Background(), recs...); err != nil {
							t.Errorf("Put: %v", err)
							return
						}
					}
				})
			}
			// Read while writing; each writer's records come in its order.
			next := make([]int, writers)
			total := 0
			for total < writers*per {
				b := readCtx(t, s, 37)
				for _, r := range b.Records {
					var w, j int
					if _, err := fmt.Sscanf(string(r), "%d:%d", &w, &j); err != nil {
						t.Fatalf("bad record %q", r)
					}
					if j != next[w] {
						t.Fatalf("writer %d: read %d, want %d", w, j, next[w])
					}
					next[w]++
					total++
				}
				if err := s.Ack(b); err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
			if s.Len() != 0 {
				t.Fatalf("Len = %d", s.Len())
			}
		}},
		{"EmptyRecords", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			defer s.Close()
			if err := s.Put(context.Background(), []byte{}, nil, []byte("x")); err != nil {
				t.Fatal(err)
			}
			b := readCtx(t, s, 10)
			if len(b.Records) != 3 || len(b.Records[0]) != 0 || len(b.Records[1]) != 0 || string(b.Records[2]) != "x" {
				t.Fatalf("read %q", b.Records)
			}
			if err := s.Put(context.Background()); err != nil {
				t.Fatalf("empty Put: %v", err)
			}
		}},
		{"PutCopies", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			defer s.Close()
			buf := []byte("first")
			if err := s.Put(context.Background(), buf); err != nil {
				t.Fatal(err)
			}
			copy(buf, "XXXXX") // the caller reuses its buffer
			if b := readCtx(t, s, 1); string(b.Records[0]) != "first" {
				t.Fatalf("read %q after the caller reused its buffer", b.Records[0])
			}
		}},
		{"RejectsHugeRecords", false, func(t *testing.T, im impl, dir string) {
			s := im.open(t, dir, false, nil)
			defer s.Close()
			huge := make([]byte, MaxRecordSize+1)
			if err := s.Put(context.Background(), rec(0), huge); err == nil {
				t.Fatal("Put of a record over 16 MiB succeeded")
			}
			if s.Len() != 0 {
				t.Fatalf("Len = %d after a rejected Put", s.Len())
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forEach(t, func(t *testing.T, im impl, dir string) {
				if tc.durableOnly && !im.durable {
					t.Skip("not durable")
				}
				tc.run(t, im, dir)
			})
		})
	}
}
