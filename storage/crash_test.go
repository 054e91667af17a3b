package storage

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashEnv carries the child's orders: kind, dir, fsync interval, first id.
const crashEnv = "IOTGW_STORAGE_CRASH_CHILD"

// crashRecord is id (8 bytes) followed by a pattern of a length made from id.
func crashRecord(id uint64) []byte {
	b := make([]byte, 8+int(id*7919%300))
	binary.LittleEndian.PutUint64(b, id)
	for i := 8; i < len(b); i++ {
		b[i] = byte(id) + byte(i)
	}
	return b
}

func crashID(t *testing.T, r []byte) uint64 {
	t.Helper()
	if len(r) < 8 {
		t.Fatalf("record of %d bytes", len(r))
	}
	id := binary.LittleEndian.Uint64(r)
	if want := crashRecord(id); string(want) != string(r) {
		t.Fatalf("record %d has wrong content", id)
	}
	return id
}

func openCrash(t testing.TB, kind, dir string, fsync time.Duration) Storage {
	var (
		s   Storage
		err error
	)
	switch kind {
	case "file":
		s, err = OpenFile(FileConfig{Dir: dir, MaxFileCount: 1000, MaxRecordsPerFile: 500, FsyncInterval: fsync}, nil)
	case "sqlite":
		s, err = OpenSQLite(SQLiteConfig{Path: filepath.Join(dir, "data.db"), FsyncInterval: fsync}, nil)
	}
	if err != nil {
		t.Fatalf("open %s: %v", kind, err)
	}
	return s
}

// TestCrashChild is the process that TestCrash kills: it puts records in a loop
// and prints the last id of every Put that returned.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("run by TestCrash as a child process")
	}
	parts := strings.Split(spec, "|")
	fsync, _ := time.ParseDuration(parts[2])
	next, _ := strconv.ParseUint(parts[3], 10, 64)
	s := openCrash(t, parts[0], parts[1], fsync)
	out := os.NewFile(3, "confirmed") // a pipe of our own: stdout has the test framework's lines
	// Two writers, so that Puts are grouped; ids come from one counter taken
	// under a lock with the Put, so that storage order is id order.
	mu := make(chan struct{}, 1)
	for w := range 2 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(w), next))
			for {
				n := 1 + rng.IntN(16)
				mu <- struct{}{}
				recs := make([][]byte, n)
				for i := range recs {
					recs[i] = crashRecord(next + uint64(i))
				}
				last := next + uint64(n) - 1
				next += uint64(n)
				err := s.Put(context.Background(), recs...)
				<-mu
				if err != nil {
					fmt.Fprintln(os.Stderr, "put:", err)
					os.Exit(3)
				}
				fmt.Fprintf(out, "%d\n", last)
			}
		}()
	}
	select {} // until killed
}

// TestCrash kills a process putting records with SIGKILL at random moments and
// checks that every record whose Put returned is there after reopen, in order,
// once.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for _, kind := range []string{"file", "sqlite"} {
		for _, fsync := range []time.Duration{0, 5 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s/fsync=%v", kind, fsync), func(t *testing.T) {
				crashRounds(t, kind, fsync, 4)
			})
		}
	}
}

func crashRounds(t *testing.T, kind string, fsync time.Duration, rounds int) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var pending []uint64 // confirmed ids not yet acknowledged, in order
	next := uint64(0)
	for round := range rounds {
		confirmed := runCrashChild(t, kind, dir, fsync, next, time.Duration(20+rng.IntN(150))*time.Millisecond)
		if confirmed < next {
			t.Fatalf("round %d: child confirmed nothing", round)
		}
		for id := next; id <= confirmed; id++ {
			pending = append(pending, id)
		}
		if kind == "file" && round%2 == 1 {
			// A torn tail: garbage after the last record of the last segment.
			segs := segFiles(t, dir)
			appendTo(t, filepath.Join(dir, segs[len(segs)-1]), []byte{9, 0, 0, 0, 1, 2, 3, 4, 5, 6})
		}

		s := openCrash(t, kind, dir, fsync)
		n := s.Len()
		var got []Batch
		for read := 0; read < n; {
			b := readCtx(t, s, 1+rng.IntN(200))
			got = append(got, b)
			read += len(b.Records)
		}
		// Every confirmed id is there, in order, once; after the last confirmed
		// one there may be records whose Put returned just before the kill.
		var ids []uint64
		for _, b := range got {
			for _, r := range b.Records {
				ids = append(ids, crashID(t, r))
			}
		}
		if len(ids) < len(pending) {
			t.Fatalf("round %d: %d records after reopen, %d confirmed and not acked", round, len(ids), len(pending))
		}
		for i, id := range pending {
			if ids[i] != id {
				t.Fatalf("round %d: record %d is id %d, want %d", round, i, ids[i], id)
			}
		}
		for i := len(pending); i < len(ids); i++ {
			if ids[i] != ids[i-1]+1 || (i == 0 && ids[i] != next) {
				t.Fatalf("round %d: unconfirmed tail %v is not contiguous", round, ids[len(pending):])
			}
		}
		if len(ids) > 0 {
			next = ids[len(ids)-1] + 1
		}
		// Acknowledge some batches; the rest must come back next round.
		k := rng.IntN(len(got) + 1)
		acked := 0
		if k > 0 {
			if err := s.Ack(got[k-1]); err != nil {
				t.Fatal(err)
			}
			for _, b := range got[:k] {
				acked += len(b.Records)
			}
		}
		pending = ids[acked:]
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: confirmed up to %d, %d records kept, %d acked", round, confirmed, len(ids), acked)
	}
}

// runCrashChild starts the child, kills it with SIGKILL after it confirmed its
// first Put and then ran for runFor, and returns the last id it confirmed.
func runCrashChild(t *testing.T, kind, dir string, fsync time.Duration, next uint64, runFor time.Duration) uint64 {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s|%d", crashEnv, kind, dir, fsync, next))
	cmd.ExtraFiles = []*os.File{pw}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	lines := make(chan uint64, 1024)
	readDone := make(chan struct{})
	var last uint64
	got := false
	go func() {
		defer close(readDone)
		br := bufio.NewReader(pr)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return // a line cut by the kill has no newline: not confirmed
			}
			if id, perr := strconv.ParseUint(strings.TrimSpace(line), 10, 64); perr == nil {
				select {
				case lines <- id:
				default:
				}
				last, got = id, true
			}
		}
	}()
	select {
	case <-lines:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child confirmed nothing; stderr:\n%s", stderr.String())
	}
	time.Sleep(runFor)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended by %v, not SIGKILL; stderr:\n%s", err, stderr.String())
	}
	<-readDone
	if !got {
		t.Fatal("no confirmed id")
	}
	io.Copy(io.Discard, pr)
	return last
}

// diskFullEnv carries the disk-full child's orders: kind and dir.
const diskFullEnv = "IOTGW_STORAGE_DISKFULL_CHILD"

// TestDiskFullChild puts records with its file size limited (RLIMIT_FSIZE), as on
// a full disk, until Put fails; it prints the last id whose Put returned.
func TestDiskFullChild(t *testing.T) {
	spec := os.Getenv(diskFullEnv)
	if spec == "" {
		t.Skip("run by TestDiskFull as a child process")
	}
	kind, dir, _ := strings.Cut(spec, "|")
	signal.Ignore(syscall.SIGXFSZ) // then write(2) fails with EFBIG instead
	lim := syscall.Rlimit{Cur: 200 << 10, Max: 200 << 10}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	// One segment, so that it is the file that reaches the limit.
	var s Storage
	var err error
	if kind == "file" {
		s, err = OpenFile(FileConfig{Dir: dir, MaxRecordsPerFile: 1 << 20}, nil)
	} else {
		s, err = OpenSQLite(SQLiteConfig{Path: filepath.Join(dir, "data.db")}, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	out := os.NewFile(3, "confirmed")
	var id uint64
	for ; id < 100000; id++ {
		if err := s.Put(context.Background(), crashRecord(id), crashRecord(id+1<<32)); err != nil {
			fmt.Fprintf(out, "failed %d: %v\n", id, err)
			break
		}
		fmt.Fprintf(out, "%d\n", id)
	}
	// Still full: the same Put fails again (nothing of it was half-stored).
	if err := s.Put(context.Background(), crashRecord(id), crashRecord(id+1<<32)); err == nil {
		fmt.Fprintf(out, "second put succeeded\n")
	}
	s.Close()
}

// TestDiskFull checks what a full disk does: Put returns an error, what was
// stored before is kept, and the storage opens cleanly afterwards.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for _, kind := range []string{"file", "sqlite"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), diskFullEnv+"="+kind+"|"+dir)
			cmd.ExtraFiles = []*os.File{pw}
			var stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			outb, _ := io.ReadAll(pr)
			pr.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v\n%s", err, stderr.String())
			}
			if strings.Contains(string(outb), "second put succeeded") {
				t.Fatalf("a Put that cannot fit succeeded on retry")
			}
			lines := strings.Split(strings.TrimSpace(string(outb)), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "failed ") || len(lines) < 10 {
				t.Fatalf("child output ends with %q after %d lines", last, len(lines))
			}
			t.Logf("child: %s", last)
			confirmed, err := strconv.Atoi(lines[len(lines)-2])
			if err != nil {
				t.Fatal(err)
			}

			var logs logBuf
			var s Storage
			if kind == "file" {
				s, err = OpenFile(FileConfig{Dir: dir, MaxRecordsPerFile: 1 << 20}, testLogger(&logs))
			} else {
				s, err = OpenSQLite(SQLiteConfig{Path: filepath.Join(dir, "data.db")}, testLogger(&logs))
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if strings.Contains(logs.String(), "torn") {
				t.Fatalf("the failed write left a torn tail:\n%s", logs.String())
			}
			n := s.Len()
			if n < 2*(confirmed+1) || n > 2*(confirmed+2) {
				t.Fatalf("Len = %d, %d puts of 2 records confirmed", n, confirmed+1)
			}
			got := readN(t, s, n)
			for i := 0; i < 2*(confirmed+1); i += 2 {
				if a, b := crashID(t, got[i]), crashID(t, got[i+1]); a != uint64(i/2) || b != uint64(i/2)+1<<32 {
					t.Fatalf("records %d,%d are ids %d,%d", i, i+1, a, b)
				}
			}
			// With room again, puts work and follow in order.
			if err := s.Put(context.Background(), []byte("after")); err != nil {
				t.Fatal(err)
			}
			if b := readCtx(t, s, 10); len(b.Records) != 1 || string(b.Records[0]) != "after" {
				t.Fatalf("read %q", b.Records)
			}
		})
	}
}
