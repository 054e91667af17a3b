package storage

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openSQLiteT(t testing.TB, cfg SQLiteConfig, logs *logBuf) *SQLite {
	t.Helper()
	var lb logBuf
	if logs == nil {
		logs = &lb
	}
	s, err := OpenSQLite(cfg, testLogger(logs))
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	return s
}

// rowCount counts the rows left in a closed database.
func rowCount(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM iotgw_records").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSQLiteTTLExpires(t *testing.T) {
	var logs logBuf
	path := filepath.Join(t.TempDir(), "data.db")
	// The TTL leaves time enough to read before expiry on a loaded machine.
	cfg := SQLiteConfig{Path: path, TTL: 800 * time.Millisecond, TTLCheck: 30 * time.Millisecond}
	s := openSQLiteT(t, cfg, &logs)
	putRange(t, s, 0, 10, 10)
	b := readCtx(t, s, 4) // read but not acknowledged: expires all the same
	if len(b.Records) != 4 && s.Stats().Expired == 0 {
		t.Fatalf("read %d records", len(b.Records))
	}
	checkBatch(t, b, 0)
	waitFor(t, func() bool { return s.Stats().Expired == 10 })
	if s.Len() != 0 {
		t.Fatalf("Len = %d after expiry", s.Len())
	}
	if !strings.Contains(logs.String(), "older than messages_ttl_in_days") {
		t.Fatalf("expiry not logged:\n%s", logs.String())
	}
	putRange(t, s, 10, 15, 5)
	b = readCtx(t, s, 100)
	if b.First != 10 {
		t.Fatalf("read from %d after expiry, want 10", b.First)
	}
	checkBatch(t, b, 10)
	// Acknowledging a batch that expired meanwhile is harmless.
	if err := s.Ack(Batch{First: 0, End: 4}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, path); n != 5 {
		t.Fatalf("%d rows left, want 5", n)
	}

	// Records that grew old while the gateway was stopped expire at open.
	time.Sleep(cfg.TTL + 50*time.Millisecond)
	cfg.TTLCheck = time.Hour
	s = openSQLiteT(t, cfg, nil)
	defer s.Close()
	waitFor(t, func() bool { return s.Stats().Expired == 5 })
	if s.Len() != 0 {
		t.Fatalf("Len = %d", s.Len())
	}
}

func TestSQLiteNoTTLKeeps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	s := openSQLiteT(t, SQLiteConfig{Path: path, TTLCheck: 10 * time.Millisecond}, nil)
	defer s.Close()
	putRange(t, s, 0, 10, 10)
	time.Sleep(50 * time.Millisecond)
	if s.Len() != 10 || s.Stats().Expired != 0 {
		t.Fatalf("Len %d, stats %+v", s.Len(), s.Stats())
	}
}

func TestSQLiteSizeLimitBoundsTheFile(t *testing.T) {
	var logs logBuf
	dir := t.TempDir()
	path := filepath.Join(dir, "data.db")
	const limit = 512 << 10
	cfg := SQLiteConfig{Path: path, SizeLimitBytes: limit, MaxDBAmount: 5}
	s := openSQLiteT(t, cfg, &logs)
	pad := bytes.Repeat([]byte("p"), 2000)
	for i := 0; i < 3000; i += 20 {
		var recs [][]byte
		for j := i; j < i+20; j++ {
			recs = append(recs, append(rec(j), pad...))
		}
		if err := s.Put(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
	}
	kept, st := s.Len(), s.Stats()
	if st.Dropped == 0 || st.Dropped+uint64(kept) != 3000 {
		t.Fatalf("Len %d, stats %+v", kept, st)
	}
	// Roughly what fits: each record takes a bit over 2 KB.
	if kept < 150 || kept > 260 {
		t.Fatalf("kept %d records under a %d-byte limit", kept, limit)
	}
	if !strings.Contains(logs.String(), "max_db_amount accepted") {
		t.Fatalf("max_db_amount not logged:\n%s", logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Freed pages are reused: the file stays near the limit.
	if fi.Size() > limit*3/2 {
		t.Fatalf("database file is %d bytes with a %d-byte limit", fi.Size(), limit)
	}
	s = openSQLiteT(t, cfg, nil)
	defer s.Close()
	if s.Len() != kept {
		t.Fatalf("Len after reopen = %d, want %d", s.Len(), kept)
	}
	b := readCtx(t, s, 1)
	if !bytes.HasPrefix(b.Records[0], rec(3000-kept)) {
		t.Fatalf("oldest kept record is %.13q, want %q", b.Records[0], rec(3000-kept))
	}
}

func TestSQLiteAckDeletesRows(t *testing.T) {
	for _, iv := range []time.Duration{0, 5 * time.Millisecond} {
		t.Run(iv.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "data.db")
			s := openSQLiteT(t, SQLiteConfig{Path: path, FsyncInterval: iv}, nil)
			putRange(t, s, 0, 100, 10)
			if err := s.Ack(readCtx(t, s, 60)); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if n := rowCount(t, path); n != 40 {
				t.Fatalf("%d rows left, want 40", n)
			}
		})
	}
}

func TestSQLiteOpenErrors(t *testing.T) {
	if _, err := OpenSQLite(SQLiteConfig{}, nil); err == nil {
		t.Fatal("OpenSQLite with no path succeeded")
	}
	if _, err := OpenSQLite(SQLiteConfig{Path: filepath.Join(t.TempDir(), "a?b.db")}, nil); err == nil {
		t.Fatal("OpenSQLite with '?' in the path succeeded")
	}
	notDB := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(notDB, bytes.Repeat([]byte("not a database "), 100), 0o640)
	if _, err := OpenSQLite(SQLiteConfig{Path: notDB}, nil); err == nil {
		t.Fatal("OpenSQLite on a file that is not a database succeeded")
	}
}
