package storage

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// FileConfig holds the settings of the file storage.
type FileConfig struct {
	// Dir is "data_folder_path": the folder of the segment files and the ack file.
	Dir string
	// MaxFileCount is "max_file_count" (10 when below 1): at most this many segment
	// files; when one more is needed the oldest is deleted, acknowledged or not.
	MaxFileCount int
	// MaxRecordsPerFile is "max_records_per_file" (10000 when below 1): records per
	// segment file.
	MaxRecordsPerFile int
	// FsyncInterval is "fsync_interval_ms". 0: Put returns once its records are
	// fsynced. Above 0: Put returns once they are written to the operating system
	// (they survive a crash of the process) and the files are fsynced at least that
	// often (the last interval can be lost on power loss).
	FsyncInterval time.Duration
}

// ackEvery bounds how often the ack file is rewritten (and, for sqlite, how long
// acknowledged rows wait for their delete when no insert comes to carry it):
// acknowledgements lost in a crash only make records be sent again, so they need
// not cost a write and an fsync each, nor wear a flash card at 100 writes a second.
const ackEvery = 100 * time.Millisecond

const (
	ackName    = "ack"
	ackTmpName = "ack.tmp"
	ackSize    = 12 // sequence uint64 LE | crc32c uint32 LE
)

// segment is one segment file in the in-memory index.
type segment struct {
	first uint64 // sequence number of its first record (and its name)
	count uint64 // records in it
	size  int64  // bytes written (only kept exact for the segment being written)
}

// File is the "file" storage: a segmented append-only log of checksummed records
// in Dir, plus an ack file holding the acknowledged sequence number.
//
// Put returns once its records are in the segment file (FsyncInterval > 0) or
// fsynced (FsyncInterval 0). A single committer goroutine gathers concurrent Puts
// into one write and one fsync. Whole segments are deleted once acknowledged; at
// most MaxFileCount segments of MaxRecordsPerFile records are kept, the oldest
// one going first (counted in Stats.Dropped and logged). On open a torn tail of
// the last segment (a crash in the middle of a write) is cut off.
type File struct {
	core
	cfg FileConfig

	// Under core.mu: the segments, oldest first; the last one is being written.
	segs    []segment
	damaged uint64 // records before it that were found damaged are counted

	// Owned by the committer.
	w            *os.File
	buf          []byte
	dirty        bool // written since the last fsync
	dirDirty     bool // segment files created since the last fsync of Dir
	lastSync     time.Time
	ackWritten   uint64
	lastAckWrite time.Time
	ackFailing   bool
	closeErr     error

	// Owned by Read (under rmu).
	rmu   sync.Mutex
	rf    *os.File
	rsrc  boundedReader
	rbr   *bufio.Reader
	rseg  uint64 // first sequence of the open segment
	rnext uint64 // sequence of the frame at the reader's position
	rhdr  bool   // the segment header was read and checked
	skip  []byte

	done chan struct{}
}

var _ Storage = (*File)(nil)

// OpenFile opens (or creates) the file storage in cfg.Dir. Records stored and not
// acknowledged before are read again, in order, from the acknowledgement point.
func OpenFile(cfg FileConfig, log *slog.Logger) (*File, error) {
	if cfg.Dir == "" {
		return nil, errors.New("storage: file: data_folder_path is empty")
	}
	if cfg.MaxFileCount < 1 {
		cfg.MaxFileCount = 10
	}
	if cfg.MaxRecordsPerFile < 1 {
		cfg.MaxRecordsPerFile = 10000
	}
	if cfg.FsyncInterval < 0 {
		cfg.FsyncInterval = 0
	}
	f := &File{core: newCore(log), cfg: cfg, done: make(chan struct{})}
	f.log = f.log.With("storage", "file", "dir", cfg.Dir)
	if err := f.recover(); err != nil {
		if f.w != nil {
			f.w.Close()
		}
		return nil, fmt.Errorf("storage: file: open %s: %w", cfg.Dir, err)
	}
	f.lastSync = time.Now()
	go f.run()
	return f, nil
}

// recover loads the segment index and the ack point, cuts a torn tail, enforces
// the limits and opens the last segment for appending.
func (f *File) recover() error {
	dir := f.cfg.Dir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, ackTmpName))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if first, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			f.segs = append(f.segs, segment{first: first})
		}
	}
	sort.Slice(f.segs, func(i, j int) bool { return f.segs[i].first < f.segs[j].first })
	ack, ackOK := readAckFile(filepath.Join(dir, ackName))
	if !ackOK {
		ack = 0
	}
	f.ackWritten = ack

	// Every segment but the last was fsynced complete before the next one was
	// created, so its record count follows from the names; a damaged record in it
	// is found (and skipped) when read.
	for i := 0; i+1 < len(f.segs); i++ {
		f.segs[i].count = f.segs[i+1].first - f.segs[i].first
	}
	if len(f.segs) > 0 {
		if err := f.recoverLast(); err != nil {
			return err
		}
		last := f.segs[len(f.segs)-1]
		if ack > last.first+last.count {
			// Everything stored is acknowledged, and numbering must go on after
			// the ack point: start afresh there.
			for _, s := range f.segs {
				if err := os.Remove(filepath.Join(dir, segName(s.first))); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			f.segs = nil
			if f.w != nil {
				f.w.Close()
				f.w = nil
			}
		}
	}
	if len(f.segs) == 0 {
		w, err := f.createSegment(ack)
		if err != nil {
			return err
		}
		f.w = w
		f.segs = []segment{{first: ack, size: segHeader}}
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	last := f.segs[len(f.segs)-1]
	f.end = last.first + last.count
	f.ack = max(ack, f.segs[0].first)
	f.cursor = f.ack
	// Limits may have shrunk since the files were written.
	var gone []string
	for len(f.segs) > f.cfg.MaxFileCount {
		gone = append(gone, f.dropOldest())
	}
	gone = append(gone, f.ackedSegments()...)
	f.removeFiles(gone)
	return nil
}

// recoverLast scans the last segment, cuts a torn tail and opens it for appending.
func (f *File) recoverLast() error {
	s := &f.segs[len(f.segs)-1]
	path := filepath.Join(f.cfg.Dir, segName(s.first))
	w, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	f.w = w
	res, err := scanSegment(w)
	if err != nil {
		return fmt.Errorf("scan %s: %w", path, err)
	}
	st, err := w.Stat()
	if err != nil {
		return err
	}
	if res.size < segHeader {
		// No valid header: nothing in this segment can be trusted.
		if st.Size() > 0 {
			f.log.Warn("segment without a valid header: emptied", "file", path, "bytes", st.Size())
		}
		if err := w.Truncate(0); err != nil {
			return err
		}
		if _, err := w.Write([]byte(segMagic)); err != nil {
			return err
		}
		res.size = segHeader
	} else if st.Size() > res.size {
		f.log.Warn("torn tail after a crash: cut", "file", path, "records_kept", res.count, "bytes_cut", st.Size()-res.size)
		if err := w.Truncate(res.size); err != nil {
			return err
		}
	}
	if err := fsync(w); err != nil {
		return err
	}
	s.count = uint64(res.count)
	s.size = res.size
	return nil
}

// createSegment creates the segment file that starts at first, with its header.
func (f *File) createSegment(first uint64) (*os.File, error) {
	path := filepath.Join(f.cfg.Dir, segName(first))
	w, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write([]byte(segMagic)); err != nil {
		w.Close()
		os.Remove(path)
		return nil, err
	}
	return w, nil
}

// dropOldest removes the oldest segment from the index, counts and logs the
// records lost with it and returns its file name. Called with f.mu held (or
// before the committer starts).
func (f *File) dropOldest() string {
	s := f.segs[0]
	f.segs = f.segs[1:]
	next := f.end
	if len(f.segs) > 0 {
		next = f.segs[0].first
	}
	if n := f.dropBelow(next); n > 0 {
		f.stats.Dropped += n
		f.log.Warn("file storage full: dropped the oldest segment", "records", n,
			"dropped_total", f.stats.Dropped, "max_file_count", f.cfg.MaxFileCount,
			"max_records_per_file", f.cfg.MaxRecordsPerFile)
	}
	return segName(s.first)
}

// ackedSegments removes from the index the segments whose records are all
// acknowledged, except the one being written, and returns their file names.
// Called with f.mu held.
func (f *File) ackedSegments() []string {
	var gone []string
	for len(f.segs) > 1 && f.segs[0].first+f.segs[0].count <= f.ack {
		gone = append(gone, segName(f.segs[0].first))
		f.segs = f.segs[1:]
	}
	return gone
}

func (f *File) removeFiles(names []string) {
	for _, n := range names {
		if err := os.Remove(filepath.Join(f.cfg.Dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			f.log.Error("cannot delete a segment", "file", n, "err", err)
		}
	}
}

// Put implements Storage. It returns once the records are written (and fsynced
// when FsyncInterval is 0), and blocks while the committer is more than a few
// MiB behind.
func (f *File) Put(ctx context.Context, records ...[]byte) error {
	return f.put(ctx, records)
}

// Ack implements Storage. The ack point is persisted by the committer within
// 100 ms (ackEvery); acknowledgements lost in a crash only cause re-sends.
func (f *File) Ack(b Batch) error {
	return f.doAck(b)
}

// run is the committer: it writes what Put queued, fsyncs, persists the ack
// point and deletes acknowledged segments.
func (f *File) run() {
	defer close(f.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		f.mu.Lock()
		var recs [][]byte
		var g *commitGroup
		if len(f.pend) > 0 {
			recs, g = f.take()
		}
		closed := f.closed
		ack := f.ack
		gone := f.ackedSegments()
		f.mu.Unlock()

		if len(recs) > 0 {
			err := f.write(recs)
			if err == nil && f.cfg.FsyncInterval == 0 {
				err = f.sync()
			}
			g.finish(err)
			f.giveBack(recs)
		}
		now := time.Now()
		if f.dirty && (closed || now.Sub(f.lastSync) >= f.cfg.FsyncInterval) {
			f.sync() // a failure is logged by fail and returned by later Puts
		}
		if ack != f.ackWritten && (closed || now.Sub(f.lastAckWrite) >= ackEvery) {
			// Retried every ackEvery; logged once per run of failures.
			err := f.writeAck(ack)
			if err != nil && !f.ackFailing {
				f.log.Error("cannot write the ack file (acknowledged records may be sent again after a restart)", "err", err)
			}
			f.ackFailing = err != nil
		}
		f.removeFiles(gone)
		if closed {
			if f.w != nil {
				if err := f.w.Close(); err != nil && f.closeErr == nil {
					f.closeErr = err
				}
			}
			return
		}

		// Sleep until kicked, or until a deferred fsync or ack write is due.
		var due time.Duration = -1
		if f.dirty {
			due = max(0, f.cfg.FsyncInterval-now.Sub(f.lastSync))
		}
		if ack != f.ackWritten {
			d := max(0, ackEvery-now.Sub(f.lastAckWrite))
			if due < 0 || d < due {
				due = d
			}
		}
		if due >= 0 {
			timer.Reset(due)
			select {
			case <-f.kick:
			case <-timer.C:
			}
			timer.Stop()
		} else {
			<-f.kick
		}
	}
}

// write appends records to the segments, rolling to a new segment when one is
// full, and makes them visible to Read.
func (f *File) write(recs [][]byte) error {
	for len(recs) > 0 {
		f.mu.Lock()
		last := f.segs[len(f.segs)-1]
		f.mu.Unlock()
		room := uint64(f.cfg.MaxRecordsPerFile) - min(last.count, uint64(f.cfg.MaxRecordsPerFile))
		if room == 0 {
			if err := f.roll(); err != nil {
				return err
			}
			continue
		}
		n := int(min(room, uint64(len(recs))))
		if cap(f.buf) > 8<<20 {
			f.buf = nil // do not keep a huge buffer after a huge record
		}
		f.buf = f.buf[:0]
		for _, r := range recs[:n] {
			f.buf = appendFrame(f.buf, r)
		}
		if _, err := f.w.Write(f.buf); err != nil {
			// Cut what part of the write made it, so that the next records
			// follow the last good one.
			if terr := f.w.Truncate(last.size); terr != nil {
				f.fail(fmt.Errorf("storage: file: write failed (%w) and cannot be undone: %w", err, terr))
			}
			return fmt.Errorf("storage: file: write %s: %w", segName(last.first), err)
		}
		f.dirty = true
		f.mu.Lock()
		s := &f.segs[len(f.segs)-1]
		s.count += uint64(n)
		s.size += int64(len(f.buf))
		f.advance(s.first+s.count, n)
		f.mu.Unlock()
		recs = recs[n:]
	}
	return nil
}

// roll closes the full segment (fsynced first, so that every segment but the
// last is always complete) and starts the next one, dropping the oldest segment
// when MaxFileCount are there.
func (f *File) roll() error {
	if err := fsync(f.w); err != nil {
		f.fail(fmt.Errorf("storage: file: fsync: %w", err))
		return f.failed
	}
	f.mu.Lock()
	next := f.end
	f.mu.Unlock()
	w, err := f.createSegment(next)
	if err != nil {
		return fmt.Errorf("storage: file: new segment: %w", err)
	}
	if err := f.w.Close(); err != nil {
		f.log.Warn("closing a full segment", "err", err)
	}
	f.w = w
	f.dirty, f.dirDirty = true, true
	var gone []string
	f.mu.Lock()
	f.segs = append(f.segs, segment{first: next, size: segHeader})
	for len(f.segs) > f.cfg.MaxFileCount {
		gone = append(gone, f.dropOldest())
	}
	f.mu.Unlock()
	f.removeFiles(gone)
	return nil
}

// sync fsyncs the segment being written, and the folder when segments were
// created.
func (f *File) sync() error {
	if err := fsync(f.w); err != nil {
		f.fail(fmt.Errorf("storage: file: fsync: %w", err))
		f.dirty = false // not retried: the storage has failed
		return f.failed
	}
	if f.dirDirty {
		if err := syncDir(f.cfg.Dir); err != nil {
			f.fail(fmt.Errorf("storage: file: fsync folder: %w", err))
			f.dirty, f.dirDirty = false, false
			return f.failed
		}
		f.dirDirty = false
	}
	f.dirty = false
	f.lastSync = time.Now()
	return nil
}

// fail makes every later Put fail: after a failed fsync the kernel may have
// dropped written pages, so nothing more can be promised.
func (f *File) fail(err error) {
	f.mu.Lock()
	if f.failed == nil {
		f.failed = err
		f.log.Error("file storage stopped accepting records", "err", err)
	}
	f.mu.Unlock()
}

// writeAck replaces the ack file atomically (write a temporary file, rename).
func (f *File) writeAck(ack uint64) error {
	var b [ackSize]byte
	binary.LittleEndian.PutUint64(b[0:8], ack)
	binary.LittleEndian.PutUint32(b[8:12], crc32.Checksum(b[0:8], castagnoli))
	tmp := filepath.Join(f.cfg.Dir, ackTmpName)
	t, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = t.Write(b[:])
	if err == nil && f.cfg.FsyncInterval == 0 {
		err = fsync(t)
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(f.cfg.Dir, ackName))
	}
	f.lastAckWrite = time.Now()
	if err != nil {
		return err
	}
	f.ackWritten = ack
	return nil
}

// readAckFile reads the ack point; ok is false when the file is missing or bad
// (then reading starts at the oldest record kept: more re-sends, nothing lost).
func readAckFile(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) != ackSize {
		return 0, false
	}
	if crc32.Checksum(b[0:8], castagnoli) != binary.LittleEndian.Uint32(b[8:12]) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[0:8]), true
}

// skipFsync is set by the fuzz test only: fsync costs milliseconds, and the
// fuzzer checks parsing and recovery, not the disk.
var skipFsync = false

// fsync makes what was written to f durable: fdatasync where there is one (the
// file size is part of what it flushes, timestamps are not, which makes it several
// times cheaper for appends).
func fsync(f *os.File) error {
	if skipFsync {
		return nil
	}
	return datasync(f)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if !skipFsync {
		err = d.Sync()
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Read implements Storage. A batch never spans two segment files, so it may hold
// fewer than max records even when more are stored.
func (f *File) Read(ctx context.Context, max int) (Batch, error) {
	if max < 1 {
		max = 1
	}
	f.rmu.Lock()
	defer f.rmu.Unlock()
	retried := false
	for {
		cur, end, gen, err := f.waitData(ctx)
		if err != nil {
			return Batch{}, err
		}
		f.mu.Lock()
		i := sort.Search(len(f.segs), func(i int) bool { return f.segs[i].first > cur }) - 1
		if i < 0 {
			f.mu.Unlock()
			return Batch{}, fmt.Errorf("storage: file: record %d is not in any segment", cur)
		}
		s := f.segs[i]
		isLast := i == len(f.segs)-1
		limit := min(cur+uint64(max), s.first+s.count, end)
		if f.rf == nil || f.rseg != s.first || f.rnext > cur {
			if err := f.openReader(s.first); err != nil {
				f.mu.Unlock()
				return Batch{}, err
			}
		}
		if isLast {
			f.rsrc.limit = s.size
		} else {
			f.rsrc.limit = 1 << 62
		}
		f.mu.Unlock()

		b, err := f.readFrames(cur, limit)
		if err != nil && len(b.Records) > 0 {
			// Hand out the good records before the damage; the next Read reopens
			// the segment and meets the damage first.
			f.rnext = ^uint64(0)
			limit, err = b.End, nil
		}
		if err != nil {
			if !errors.Is(err, errCorrupt) && err != io.ErrUnexpectedEOF && err != io.EOF {
				return Batch{}, fmt.Errorf("storage: file: read %s: %w", segName(s.first), err)
			}
			if !retried {
				// Before skipping anything, read once more from a fresh file
				// handle and buffer: only damage that is really on disk counts.
				retried = true
				f.rf.Close()
				f.rf = nil
				continue
			}
			retried = false
			f.skipDamaged(gen, s.first, f.rnext, err)
			continue
		}
		if f.moveCursor(gen, cur, limit) {
			return b, nil
		}
	}
}

// openReader opens segment first for reading. Called with f.mu held, so that the
// committer cannot delete it in between.
func (f *File) openReader(first uint64) error {
	if f.rf != nil {
		f.rf.Close()
		f.rf = nil
	}
	rf, err := os.Open(filepath.Join(f.cfg.Dir, segName(first)))
	if err != nil {
		return fmt.Errorf("storage: file: %w", err)
	}
	f.rf, f.rseg, f.rnext = rf, first, first
	f.rhdr = false
	f.rsrc = boundedReader{f: rf, off: 0, limit: segHeader}
	if f.rbr == nil {
		f.rbr = bufio.NewReaderSize(&f.rsrc, 256<<10)
	} else {
		f.rbr.Reset(&f.rsrc)
	}
	return nil
}

// readFrames reads records [cur, limit) from the open segment, skipping (and
// checking) the ones before cur.
func (f *File) readFrames(cur, limit uint64) (Batch, error) {
	var err error
	if !f.rhdr {
		var h [segHeader]byte
		if _, err := io.ReadFull(f.rbr, h[:]); err != nil || string(h[:]) != segMagic {
			return Batch{}, errCorrupt
		}
		f.rhdr = true
	}
	for f.rnext < cur {
		if f.skip, err = skipFrame(f.rbr, f.skip); err != nil {
			return Batch{}, err
		}
		f.rnext++
	}
	n := int(limit - cur)
	arena := make([]byte, 0, min(n*256, 1<<20)) // typical records: one allocation
	ends := make([]int, 0, n)
	for range n {
		if arena, err = readFrame(f.rbr, arena); err != nil {
			break
		}
		f.rnext++
		ends = append(ends, len(arena))
	}
	b := Batch{Records: make([][]byte, len(ends)), First: cur, End: cur + uint64(len(ends))}
	start := 0
	for i, e := range ends {
		b.Records[i] = arena[start:e:e]
		start = e
	}
	return b, err
}

// skipDamaged handles a damaged record at seq in segment first (bit rot, or a
// segment cut short behind our back): the rest of that segment cannot be framed,
// so reading resumes at the next segment; the records skipped are counted as
// dropped.
func (f *File) skipDamaged(gen, first, seq uint64, cause error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		return
	}
	i := sort.Search(len(f.segs), func(i int) bool { return f.segs[i].first > first }) - 1
	if i < 0 || f.segs[i].first != first {
		return
	}
	next := f.end
	if i+1 < len(f.segs) {
		next = f.segs[i+1].first
	}
	if next <= seq {
		return
	}
	f.cursor = next
	f.gen++
	// Reopen at the next Read; for the segment being written, continue at its end,
	// where records appended later follow.
	if f.rf != nil {
		f.rf.Close()
		f.rf = nil
	}
	if i == len(f.segs)-1 {
		if rf, err := os.Open(filepath.Join(f.cfg.Dir, segName(first))); err == nil {
			f.rf, f.rseg, f.rnext, f.rhdr = rf, first, next, true
			f.rsrc = boundedReader{f: rf, off: f.segs[i].size, limit: f.segs[i].size}
			f.rbr.Reset(&f.rsrc)
		}
	}
	if seq < f.damaged {
		// Read again after a Rewind: already counted and logged.
		return
	}
	f.damaged = next
	f.stats.Dropped += next - seq
	f.log.Error("damaged record in a segment: skipped the rest of it", "file", segName(first),
		"sequence", seq, "records_skipped", next-seq, "err", cause)
}

// Close implements Storage: it writes and fsyncs what is queued, persists the
// ack point and closes the files.
func (f *File) Close() error {
	if !f.markClosed() {
		return nil
	}
	<-f.done
	f.rmu.Lock()
	if f.rf != nil {
		f.rf.Close()
		f.rf = nil
	}
	f.rmu.Unlock()
	return f.closeErr
}
