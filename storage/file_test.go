package storage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func openFileT(t testing.TB, cfg FileConfig, logs *logBuf) *File {
	t.Helper()
	var lb logBuf
	if logs == nil {
		logs = &lb
	}
	f, err := OpenFile(cfg, testLogger(logs))
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	return f
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	slices.Sort(m)
	return m
}

// readN reads exactly n records (or fails) and returns them.
func readN(t testing.TB, s Storage, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for len(out) < n {
		out = append(out, readCtx(t, s, n-len(out)).Records...)
	}
	return out
}

func TestFileTornTail(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		kept   int // of the 10 records put
		warn   bool
	}{
		{"garbage appended", func(t *testing.T, path string) {
			appendTo(t, path, []byte("\x07\x00\x00\x00garbage!!"))
		}, 10, true},
		{"zeros appended", func(t *testing.T, path string) {
			appendTo(t, path, make([]byte, 4096))
		}, 10, true},
		{"last record cut short", func(t *testing.T, path string) {
			truncateBy(t, path, 3)
		}, 9, true},
		{"only the last header left", func(t *testing.T, path string) {
			truncateBy(t, path, int64(len(rec(9))))
		}, 9, true},
		{"half a frame header", func(t *testing.T, path string) {
			truncateBy(t, path, int64(len(rec(9)))+4)
		}, 9, true},
		{"payload flipped", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			b[len(b)-2] ^= 0x40
			os.WriteFile(path, b, 0o640)
		}, 9, true},
		{"header destroyed", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			b[0] = 'X'
			os.WriteFile(path, b, 0o640)
		}, 0, true},
		{"empty file", func(t *testing.T, path string) {
			os.Truncate(path, 0)
		}, 0, false},
		{"untouched", func(t *testing.T, path string) {}, 10, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := FileConfig{Dir: dir, MaxRecordsPerFile: 100}
			f := openFileT(t, cfg, nil)
			putRange(t, f, 0, 10, 4)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			segs := segFiles(t, dir)
			if len(segs) != 1 || segs[0] != "00000000000000000000.seg" {
				t.Fatalf("segments %v", segs)
			}
			tc.damage(t, filepath.Join(dir, segs[0]))

			var logs logBuf
			f = openFileT(t, cfg, &logs)
			defer f.Close()
			if f.Len() != tc.kept {
				t.Fatalf("Len = %d after reopen, want %d", f.Len(), tc.kept)
			}
			if got := strings.Contains(logs.String(), "level=WARN"); got != tc.warn {
				t.Fatalf("warning logged = %v, want %v:\n%s", got, tc.warn, logs.String())
			}
			// New records follow the kept ones, with no gap in the sequence.
			putRange(t, f, 100, 103, 3)
			got := readN(t, f, tc.kept+3)
			for i := range tc.kept {
				if !bytes.Equal(got[i], rec(i)) {
					t.Fatalf("record %d = %q", i, got[i])
				}
			}
			for i := range 3 {
				if !bytes.Equal(got[tc.kept+i], rec(100+i)) {
					t.Fatalf("record %d = %q, want %q", tc.kept+i, got[tc.kept+i], rec(100+i))
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			// And the repaired file opens cleanly.
			logs = logBuf{}
			f = openFileT(t, cfg, &logs)
			if f.Len() != tc.kept+3 || strings.Contains(logs.String(), "level=WARN") {
				t.Fatalf("second reopen: Len = %d, log:\n%s", f.Len(), logs.String())
			}
		})
	}
}

func appendTo(t *testing.T, path string, b []byte) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Write(b); err != nil {
		t.Fatal(err)
	}
}

func truncateBy(t *testing.T, path string, n int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-n); err != nil {
		t.Fatal(err)
	}
}

func TestFileDamagedMiddleSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := FileConfig{Dir: dir, MaxRecordsPerFile: 10}
	f := openFileT(t, cfg, nil)
	putRange(t, f, 0, 30, 5)
	f.Close()
	if segs := segFiles(t, dir); !slices.Equal(segs, []string{segName(0), segName(10), segName(20)}) {
		t.Fatalf("segments %v", segs)
	}
	// Flip a bit in the payload of record 3 of the first segment.
	path := filepath.Join(dir, segName(0))
	b, _ := os.ReadFile(path)
	i := bytes.Index(b, rec(3))
	b[i+2] ^= 1
	os.WriteFile(path, b, 0o640)

	var logs logBuf
	f = openFileT(t, cfg, &logs)
	defer f.Close()
	var got [][]byte
	for len(got) < 23 {
		got = append(got, readCtx(t, f, 100).Records...)
	}
	want := [][]byte{rec(0), rec(1), rec(2)}
	for i := 10; i < 30; i++ {
		want = append(want, rec(i))
	}
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("read %q", got)
	}
	if st := f.Stats(); st.Dropped != 7 {
		t.Fatalf("Dropped = %d, want 7", st.Dropped)
	}
	if !strings.Contains(logs.String(), "damaged record") {
		t.Fatalf("no log of the damage:\n%s", logs.String())
	}
	// Reading again after Rewind skips the damage again without counting it twice.
	f.Rewind()
	got = got[:0]
	for len(got) < 23 {
		got = append(got, readCtx(t, f, 100).Records...)
	}
	if !slices.EqualFunc(got, want, bytes.Equal) || f.Stats().Dropped != 7 {
		t.Fatalf("after Rewind read %q, stats %+v", got, f.Stats())
	}
}

func TestFileSegmentsAndAckFile(t *testing.T) {
	dir := t.TempDir()
	cfg := FileConfig{Dir: dir, MaxFileCount: 3, MaxRecordsPerFile: 40}
	f := openFileT(t, cfg, nil)
	putRange(t, f, 0, 200, 8)
	// 5 segments were written; the 2 oldest were dropped with their 80 records.
	if got := segFiles(t, dir); !slices.Equal(got, []string{segName(80), segName(120), segName(160)}) {
		t.Fatalf("segments %v", got)
	}
	if f.Len() != 120 || f.Stats().Dropped != 80 {
		t.Fatalf("Len %d, stats %+v", f.Len(), f.Stats())
	}
	for i, want := range []uint64{80, 120, 160} {
		// A batch never spans two segments.
		b := readCtx(t, f, []int{50, 50, 20}[i])
		if b.First != want || b.End != want+40-uint64(i/2)*20 {
			t.Fatalf("batch %d is [%d,%d)", i, b.First, b.End)
		}
		checkBatch(t, b, int(want))
		if err := f.Ack(b); err != nil {
			t.Fatal(err)
		}
	}
	// Acked through 180: the first two segments go (the committer does it soon).
	waitFor(t, func() bool { return slices.Equal(segFiles(t, dir), []string{segName(160)}) })
	waitFor(t, func() bool { a, ok := readAckFile(filepath.Join(dir, ackName)); return ok && a == 180 })
	// A kill now would lose nothing: the state on disk is what the ack file says.
	f.Close()
	f = openFileT(t, cfg, nil)
	defer f.Close()
	if f.Len() != 20 {
		t.Fatalf("Len after reopen = %d, want 20", f.Len())
	}
	checkBatch(t, readCtx(t, f, 100), 180)
}

func TestFileBadAckFileRereads(t *testing.T) {
	dir := t.TempDir()
	cfg := FileConfig{Dir: dir}
	f := openFileT(t, cfg, nil)
	putRange(t, f, 0, 10, 10)
	if err := f.Ack(readCtx(t, f, 5)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if a, ok := readAckFile(filepath.Join(dir, ackName)); !ok || a != 5 {
		t.Fatalf("ack file = %d, %v", a, ok)
	}
	os.WriteFile(filepath.Join(dir, ackName), []byte("junk"), 0o640)
	f = openFileT(t, cfg, nil)
	defer f.Close()
	// Without a valid ack point everything kept is read again: more re-sends,
	// nothing lost.
	if f.Len() != 10 {
		t.Fatalf("Len = %d, want 10", f.Len())
	}
	checkBatch(t, readCtx(t, f, 100), 0)
}

func TestFileFsyncInterval(t *testing.T) {
	for _, iv := range []time.Duration{0, 5 * time.Millisecond, time.Hour} {
		t.Run(iv.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := FileConfig{Dir: dir, MaxRecordsPerFile: 50, FsyncInterval: iv}
			f := openFileT(t, cfg, nil)
			putRange(t, f, 0, 120, 7)
			// Put returned: the records are in the files, whatever the interval.
			total := 0
			for _, name := range segFiles(t, dir) {
				fh, err := os.Open(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				res, err := scanSegment(fh)
				fh.Close()
				if err != nil || res.torn {
					t.Fatalf("%s: %+v %v", name, res, err)
				}
				total += int(res.count)
			}
			if total != 120 {
				t.Fatalf("%d records in the files, want 120", total)
			}
			f.Close()
			f = openFileT(t, cfg, nil)
			defer f.Close()
			checkBatch(t, readCtx(t, f, 200), 0)
		})
	}
}

func TestFileOpenErrors(t *testing.T) {
	if _, err := OpenFile(FileConfig{}, nil); err == nil {
		t.Fatal("OpenFile with no folder succeeded")
	}
	file := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(file, nil, 0o640)
	if _, err := OpenFile(FileConfig{Dir: file}, nil); err == nil {
		t.Fatal("OpenFile on a plain file succeeded")
	}
}

func TestFileAllAckedSequenceGoesOn(t *testing.T) {
	dir := t.TempDir()
	cfg := FileConfig{Dir: dir, MaxRecordsPerFile: 4}
	f := openFileT(t, cfg, nil)
	putRange(t, f, 0, 10, 10)
	for range 3 { // segments of 4, 4 and 2 records
		if err := f.Ack(readCtx(t, f, 100)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	// Simulate a crash after the segments were deleted: only the ack file says
	// where numbering is.
	for _, n := range segFiles(t, dir) {
		os.Remove(filepath.Join(dir, n))
	}
	f = openFileT(t, cfg, nil)
	defer f.Close()
	if f.Len() != 0 {
		t.Fatalf("Len = %d", f.Len())
	}
	putRange(t, f, 10, 12, 2)
	b := readCtx(t, f, 10)
	if b.First != 10 {
		t.Fatalf("numbering restarted at %d, want 10", b.First)
	}
	checkBatch(t, b, 10)
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSegmentNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  uint64
		ok   bool
	}{
		{"00000000000000000000.seg", 0, true},
		{"00000000000000012345.seg", 12345, true},
		{"18446744073709551615.seg", 1<<64 - 1, true},
		{"99999999999999999999.seg", 0, false},
		{"0000000000000000001.seg", 0, false},
		{"0000000000000000001a.seg", 0, false},
		{"00000000000000000001.tmp", 0, false},
		{"ack", 0, false},
	} {
		seq, ok := parseSegName(tc.name)
		if ok != tc.ok || (ok && seq != tc.seq) {
			t.Errorf("parseSegName(%q) = %d, %v", tc.name, seq, ok)
		}
		if ok && segName(seq) != tc.name {
			t.Errorf("segName(%d) = %q", seq, segName(seq))
		}
	}
}

// ctxBlockedPut checks back-pressure: a Put that does not fit in the queue
// waits, and gives up with its context.
func TestBackPressureHonoursContext(t *testing.T) {
	c := newCore(nil)
	// No committer runs: the first Put fills the queue and waits for its commit.
	big := make([]byte, maxPendingBytes-frameHeader)
	go c.put(context.Background(), [][]byte{big})
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pend) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := c.put(ctx, [][]byte{[]byte("x")}); err != context.DeadlineExceeded {
		t.Fatalf("put into a full queue = %v, want DeadlineExceeded", err)
	}
	// The committer taking the queue lets the next Put in.
	errc := make(chan error, 1)
	go func() { errc <- c.put(context.Background(), [][]byte{[]byte("y")}) }()
	time.Sleep(20 * time.Millisecond)
	c.mu.Lock()
	recs, g := c.take()
	c.mu.Unlock()
	if len(recs) != 1 {
		t.Fatalf("took %d records", len(recs))
	}
	g.finish(nil)
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pend) == 1 })
	c.mu.Lock()
	_, g = c.take()
	c.mu.Unlock()
	g.finish(nil)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommit checks that Puts waiting at the same time are taken by the
// committer as one group: one write and one fsync for all of them.
func TestGroupCommit(t *testing.T) {
	c := newCore(nil)
	const puts = 8
	errc := make(chan error, puts)
	for i := range puts {
		go func() { errc <- c.put(context.Background(), [][]byte{rec(2 * i), rec(2*i + 1)}) }()
	}
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pend) == 2*puts })
	c.mu.Lock()
	recs, g := c.take()
	c.mu.Unlock()
	if len(recs) != 2*puts {
		t.Fatalf("group of %d records, want %d", len(recs), 2*puts)
	}
	select {
	case err := <-errc:
		t.Fatalf("a Put returned (%v) before its group was committed", err)
	case <-time.After(20 * time.Millisecond):
	}
	g.finish(nil)
	for range puts {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// A failed group fails every Put in it.
	go func() { errc <- c.put(context.Background(), [][]byte{rec(0)}) }()
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pend) == 1 })
	c.mu.Lock()
	_, g = c.take()
	c.mu.Unlock()
	g.finish(os.ErrInvalid)
	if err := <-errc; err != os.ErrInvalid {
		t.Fatalf("Put = %v, want the group's error", err)
	}
}
