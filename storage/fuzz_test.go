package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// refParse is an independent reading of the segment format: the records of the
// valid prefix of a segment file.
func refParse(b []byte) [][]byte {
	if len(b) < 8 || string(b[:8]) != "IGWSEG1\n" {
		return nil
	}
	b = b[8:]
	tab := crc32.MakeTable(crc32.Castagnoli)
	var out [][]byte
	for len(b) >= 8 {
		n := binary.LittleEndian.Uint32(b)
		if n > 16<<20 || uint64(len(b)-8) < uint64(n) {
			break
		}
		if crc32.Update(crc32.Checksum(b[:4], tab), tab, b[8:8+n]) != binary.LittleEndian.Uint32(b[4:]) {
			break
		}
		out = append(out, b[8:8+n])
		b = b[8+n:]
	}
	return out
}

// buildSegment makes a valid segment of recs.
func buildSegment(recs [][]byte) []byte {
	b := []byte(segMagic)
	for _, r := range recs {
		b = appendFrame(b, r)
	}
	return b
}

// splitRecords cuts data into records of lengths taken from the data itself.
func splitRecords(data []byte) [][]byte {
	var recs [][]byte
	for len(data) > 0 {
		n := min(len(data), int(data[0])%23)
		recs = append(recs, data[:n])
		data = data[n:]
		if n == 0 {
			data = data[1:]
		}
	}
	return recs
}

// readSome reads until want records came or nothing more comes.
func readSome(t *testing.T, s Storage, want int) [][]byte {
	var got [][]byte
	for len(got) < want {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		b, err := s.Read(ctx, 1+want-len(got))
		cancel()
		if err != nil {
			t.Fatalf("Read after %d of %d records: %v", len(got), want, err)
		}
		got = append(got, b.Records...)
	}
	return got
}

func sameRecords(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: record %d = %q, want %q", what, i, got[i], want[i])
		}
	}
}

// FuzzFileSegment feeds arbitrary bytes to the recovery path (as the last
// segment) and to the read path (as a segment followed by another), and corrupts
// valid segments: opening never fails or panics, and only records with good
// checksums come out, in order.
func FuzzFileSegment(f *testing.F) {
	valid := buildSegment([][]byte{[]byte("a"), {}, []byte("hello world"), bytes.Repeat([]byte{0}, 40)})
	skipFsync = true
	f.Cleanup(func() { skipFsync = false })
	f.Add(valid, uint32(0), byte(0))
	f.Add(valid, uint32(0), byte(1))
	f.Add([]byte("hello, records of every length"), uint32(20), byte(2))
	f.Add([]byte("hello, records of every length"), uint32(3), byte(0x42))
	f.Add([]byte{}, uint32(0), byte(0))
	f.Add([]byte("IGWSEG1\n\xff\xff\xff\xff\x00\x00\x00\x00"), uint32(0), byte(0))
	f.Add(append([]byte("IGWSEG1\n"), make([]byte, 64)...), uint32(0), byte(3))
	f.Fuzz(func(t *testing.T, data []byte, pos uint32, x byte) {
		dir := t.TempDir()
		cfg := FileConfig{Dir: dir, MaxRecordsPerFile: 1 << 20}
		var logs logBuf
		switch x % 3 {
		case 0: // arbitrary bytes as the last segment: the recovery path
			os.WriteFile(filepath.Join(dir, segName(0)), data, 0o640)
			s, err := OpenFile(cfg, testLogger(&logs))
			if err != nil {
				t.Fatalf("OpenFile: %v", err)
			}
			defer s.Close()
			want := refParse(data)
			if s.Len() != len(want) {
				t.Fatalf("Len = %d, want %d", s.Len(), len(want))
			}
			sameRecords(t, "recovered", readSome(t, s, len(want)), want)
			// The log goes on after the kept records.
			if err := s.Put(context.Background(), []byte("after")); err != nil {
				t.Fatal(err)
			}
			sameRecords(t, "appended", readSome(t, s, 1), [][]byte{[]byte("after")})

		case 1: // arbitrary bytes as an older segment of 8 records: the read path
			os.WriteFile(filepath.Join(dir, segName(0)), data, 0o640)
			tail := [][]byte{[]byte("tail-0"), []byte("tail-1")}
			os.WriteFile(filepath.Join(dir, segName(8)), buildSegment(tail), 0o640)
			s, err := OpenFile(cfg, testLogger(&logs))
			if err != nil {
				t.Fatalf("OpenFile: %v", err)
			}
			defer s.Close()
			want := refParse(data)
			want = append(want[:min(8, len(want))], tail...)
			got := readSome(t, s, len(want))
			sameRecords(t, "read", got, want)
			if st := s.Stats(); st.Dropped != uint64(10-len(want)) {
				t.Fatalf("Dropped = %d, want %d", st.Dropped, 10-len(want))
			}

		case 2: // a valid segment with one byte changed
			recs := splitRecords(data)
			seg := buildSegment(recs)
			i := int(pos % uint32(len(seg)))
			seg[i] ^= x
			os.WriteFile(filepath.Join(dir, segName(0)), seg, 0o640)
			s, err := OpenFile(cfg, testLogger(&logs))
			if err != nil {
				t.Fatalf("OpenFile: %v", err)
			}
			defer s.Close()
			got := readSome(t, s, s.Len())
			// The records before the changed byte survive, the rest is cut.
			keep := 0
			if i >= len(segMagic) {
				off := len(segMagic)
				for _, r := range recs {
					off += frameHeader + len(r)
					if off > i {
						break
					}
					keep++
				}
			}
			sameRecords(t, "after corruption", got, recs[:keep])
		}
	})
}
