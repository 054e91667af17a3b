package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// SQLiteConfig holds the settings of the sqlite storage.
type SQLiteConfig struct {
	// Path is "data_file_path": the database file (its folder is created).
	Path string
	// TTLCheck is "messages_ttl_check_in_hours": how often expired records are
	// deleted (1 h when below or at 0). A check also runs at open.
	TTLCheck time.Duration
	// TTL is "messages_ttl_in_days": records older than this are deleted whether
	// sent or not, and counted in Stats.Expired. 0 keeps records forever.
	TTL time.Duration
	// SizeLimitBytes is "size_limit" (MB in the TB config): when the records take
	// more, the oldest are deleted (counted in Stats.Dropped). 0 means no limit.
	SizeLimitBytes int64
	// MaxDBAmount is "max_db_amount". The Python gateway rotates to a new file at
	// size_limit and keeps that many; one database with SizeLimitBytes gives the
	// same bound, so it is accepted and only logged.
	MaxDBAmount int
	// FsyncInterval is "fsync_interval_ms". 0: Put returns once its transaction is
	// committed with synchronous=FULL (fsynced). Above 0: synchronous=NORMAL, Put
	// returns once committed to the write-ahead log (survives a crash of the
	// process) and the log is fsynced at least that often.
	FsyncInterval time.Duration
}

const (
	insertChunk  = 64 // rows per INSERT statement
	sqliteSchema = `CREATE TABLE IF NOT EXISTS iotgw_records (
		seq  INTEGER PRIMARY KEY,
		ts   INTEGER NOT NULL,
		data BLOB NOT NULL
	)`
	// rowOverhead approximates what a row costs beyond its data, to decide when
	// to measure the database size.
	rowOverhead = 24
	// delChunk is the most acknowledged rows deleted in one transaction.
	delChunk = 4096
)

// SQLite is the "sqlite" storage: records are rows of a table in a WAL-mode
// SQLite database that the process holds exclusively, inserted in one transaction
// per Put that finds the storage idle, or per group of Puts gathered by the
// committer goroutine meanwhile, and deleted once acknowledged, expired or pushed
// out by the size limit.
type SQLite struct {
	core
	cfg SQLiteConfig

	db *sql.DB
	// conn is the only connection: the database is opened with
	// locking_mode=EXCLUSIVE, which no second connection could share. The
	// committer and Read take cmu around every use of it.
	cmu  sync.Mutex
	conn *sql.Conn

	// Guarded by cmu: used by the committer and by Puts that commit directly.
	ins        [insertChunk + 1]*sql.Stmt // INSERT of n rows, prepared when first used
	del        *sql.Stmt
	deleted    uint64 // rows before it are deleted from the table
	lastTS     int64
	args       []any
	lastDel    time.Time
	delFailing bool
	lastTTL    time.Time
	usedEst    int64 // estimate of the bytes the rows take
	wal        *os.File
	dirty      bool   // committed to the WAL since its last fsync
	commits    uint64 // transactions that inserted rows
	lastSync   time.Time

	// grouping (under core.mu) is set while the committer holds a group it
	// took: Puts then queue behind it instead of committing on their own, so
	// that concurrent writers keep being grouped.
	grouping bool
	delMore  bool // guarded by cmu: the last delete stopped at delChunk rows

	rmu  sync.Mutex // serializes Read and Close
	rsel *sql.Stmt  // Read's SELECT, on conn

	done chan struct{}
}

var _ Storage = (*SQLite)(nil)

// OpenSQLite opens (or creates) the sqlite storage at cfg.Path. Records stored
// and not acknowledged before are read again, in order.
func OpenSQLite(cfg SQLiteConfig, log *slog.Logger) (*SQLite, error) {
	if cfg.Path == "" {
		return nil, errors.New("storage: sqlite: data_file_path is empty")
	}
	if strings.ContainsRune(cfg.Path, '?') {
		return nil, fmt.Errorf("storage: sqlite: data_file_path %q contains '?'", cfg.Path)
	}
	if cfg.TTLCheck <= 0 {
		cfg.TTLCheck = time.Hour
	}
	if cfg.TTL < 0 {
		cfg.TTL = 0
	}
	if cfg.FsyncInterval < 0 {
		cfg.FsyncInterval = 0
	}
	s := &SQLite{core: newCore(log), cfg: cfg, done: make(chan struct{})}
	s.log = s.log.With("storage", "sqlite", "path", cfg.Path)
	if err := s.open(); err != nil {
		s.closeDB()
		return nil, fmt.Errorf("storage: sqlite: open %s: %w", cfg.Path, err)
	}
	if cfg.MaxDBAmount > 1 {
		s.log.Info("max_db_amount accepted: one database bounded by size_limit keeps the same guarantee", "max_db_amount", cfg.MaxDBAmount)
	}
	s.lastSync = time.Now()
	go s.run()
	return s, nil
}

func (s *SQLite) open() error {
	if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o750); err != nil {
		return err
	}
	// wal_autocheckpoint: with synchronous=NORMAL a checkpoint is the only
	// fsync a commit may do (two of them, WAL then database), on the Put's
	// path; every small transaction appends a whole page, so SQLite's default
	// of 1000 pages checkpointed every 1000 transactions. 8192 pages (a 32 MiB
	// WAL) measured +15 % single-writer throughput. With FULL every commit
	// fsyncs anyway, and a WAL that is still growing makes each fsync allocate
	// blocks: the default stays.
	syncMode, ckpt := "FULL", "1000"
	if s.cfg.FsyncInterval > 0 {
		syncMode, ckpt = "NORMAL", "8192"
	}
	// locking_mode comes first: set before the first access of a WAL database,
	// it keeps the WAL index in the process's memory instead of a shared-memory
	// file whose fcntl locks every transaction takes. The lock is held until the
	// database is closed (or the process dies: the kernel releases it).
	dsn := s.cfg.Path + "?_pragma=locking_mode(EXCLUSIVE)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(" + syncMode + ")&_pragma=journal_size_limit(67108864)&_pragma=wal_autocheckpoint(" + ckpt + ")"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	s.db = db
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	ctx := context.Background()
	if s.conn, err = db.Conn(ctx); err != nil {
		return err
	}
	var mode string
	if err := s.conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, not wal", mode)
	}
	if err := s.conn.QueryRowContext(ctx, "PRAGMA locking_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "exclusive") {
		return fmt.Errorf("locking_mode is %q, not exclusive", mode)
	}
	if _, err := s.conn.ExecContext(ctx, sqliteSchema); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	var lo, hi sql.NullInt64
	if err := s.conn.QueryRowContext(ctx, "SELECT min(seq), max(seq) FROM iotgw_records").Scan(&lo, &hi); err != nil {
		return err
	}
	if lo.Valid {
		s.deleted, s.end = uint64(lo.Int64), uint64(hi.Int64)+1
		if err := s.conn.QueryRowContext(ctx, "SELECT ts FROM iotgw_records WHERE seq = ?", hi.Int64).Scan(&s.lastTS); err != nil {
			return err
		}
	}
	s.ack, s.cursor = s.deleted, s.deleted
	if s.del, err = s.conn.PrepareContext(ctx, "DELETE FROM iotgw_records WHERE seq < ?"); err != nil {
		return err
	}
	if s.rsel, err = s.conn.PrepareContext(ctx, "SELECT seq, data FROM iotgw_records WHERE seq >= ? AND seq < ? ORDER BY seq"); err != nil {
		return err
	}
	if s.usedEst, err = s.usedBytes(); err != nil {
		return err
	}
	return nil
}

// closeDB releases statements, connections and the database.
func (s *SQLite) closeDB() error {
	var errs []error
	for _, st := range append(s.ins[:], s.del, s.rsel) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, c := range []*sql.Conn{s.conn} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	if s.wal != nil {
		errs = append(errs, s.wal.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}

// Put implements Storage. It returns once the records are committed (and
// fsynced when FsyncInterval is 0), and blocks while the committer is more than a
// few MiB behind.
//
// When nothing is queued and no commit is running, Put commits its records
// itself, on the caller's goroutine: a single producer (one serial port in a
// burst) then pays no hand-off to the committer and back per Put. Otherwise the
// records join the committer's next group commit.
func (s *SQLite) Put(ctx context.Context, records ...[]byte) error {
	if len(records) == 0 {
		return nil
	}
	if s.cmu.TryLock() {
		s.mu.Lock()
		direct := len(s.pend) == 0 && !s.grouping && !s.closed && s.failed == nil
		s.mu.Unlock()
		if direct {
			for i, r := range records {
				if len(r) > MaxRecordSize {
					s.cmu.Unlock()
					return fmt.Errorf("storage: record %d is %d bytes, more than the %d allowed", i, len(r), MaxRecordSize)
				}
			}
			wasDirty := s.dirty
			err := s.step(records, nil, false, time.Now())
			// The committer learns that the log needs its fsync, once.
			pokeSync := s.dirty && !wasDirty
			s.cmu.Unlock()
			if pokeSync {
				s.poke()
			}
			return err
		}
		s.cmu.Unlock()
	}
	return s.put(ctx, records)
}

// Ack implements Storage. Acknowledged rows are deleted at most every 100 ms
// (ackEvery), delChunk rows per transaction, in the transaction of an insert
// when one is due.
func (s *SQLite) Ack(b Batch) error {
	return s.doAck(b)
}

// run is the committer: it commits the queued Puts, deletes acknowledged and
// expired rows and fsyncs the write-ahead log. Everything it does with the
// database is under cmu, which direct Puts and Read take too.
func (s *SQLite) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var recs [][]byte
		var g *commitGroup
		if len(s.pend) > 0 {
			recs, g = s.take()
		}
		s.grouping = len(recs) > 0
		closed := s.closed
		s.mu.Unlock()

		s.cmu.Lock()
		now := time.Now()
		s.step(recs, g, closed, now)
		if len(recs) > 0 {
			s.giveBack(recs)
			s.mu.Lock()
			s.grouping = false
			s.mu.Unlock()
		}
		if s.dirty && (closed || now.Sub(s.lastSync) >= s.cfg.FsyncInterval) {
			s.syncWAL()
		}
		if s.cfg.TTL > 0 && !closed && now.Sub(s.lastTTL) >= s.cfg.TTLCheck {
			s.lastTTL = now
			if err := s.expire(now); err != nil {
				s.log.Error("deleting expired records failed", "err", err)
			}
		}
		if closed {
			s.cmu.Unlock()
			return
		}

		var due time.Duration = -1
		if s.dirty {
			due = max(0, s.cfg.FsyncInterval-now.Sub(s.lastSync))
		}
		s.mu.Lock()
		ackPending := s.ack > s.deleted
		s.mu.Unlock()
		if ackPending {
			d := max(0, ackEvery-now.Sub(s.lastDel))
			if s.delMore {
				d = 0
			}
			if due < 0 || d < due {
				due = d
			}
		}
		if s.cfg.TTL > 0 {
			d := max(0, s.cfg.TTLCheck-now.Sub(s.lastTTL))
			if due < 0 || d < due {
				due = d
			}
		}
		s.cmu.Unlock()
		if due >= 0 {
			timer.Reset(due)
			select {
			case <-s.kick:
			case <-timer.C:
			}
			timer.Stop()
		} else {
			<-s.kick
		}
	}
}

// step commits recs (which may be none) together with the deletion of the
// acknowledged rows when that is due, enforces the size limit and ends the group
// g. It returns the error of the commit. Called with cmu held.
func (s *SQLite) step(recs [][]byte, g *commitGroup, closed bool, now time.Time) error {
	s.mu.Lock()
	ack := s.ack
	s.mu.Unlock()
	delAck := ack > s.deleted && (closed || s.delMore || now.Sub(s.lastDel) >= ackEvery)
	if len(recs) == 0 && !delAck {
		return nil
	}
	// Deleting costs about a microsecond per row and holds the connection:
	// at most delChunk rows per transaction, so that Read and Puts get their
	// turn between chunks; the committer comes back for the rest at once.
	if !closed {
		ack = min(ack, s.deleted+delChunk)
	}
	err := s.commit(recs, ack, delAck)
	if delAck {
		s.mu.Lock()
		s.delMore = err == nil && ack < s.ack
		s.mu.Unlock()
	}
	// Enforced before Put returns, so that what Put stored fits the limit.
	if s.cfg.SizeLimitBytes > 0 && s.usedEst > s.cfg.SizeLimitBytes {
		if serr := s.enforceSize(); serr != nil {
			s.log.Error("enforcing size_limit failed", "err", serr)
		}
	}
	g.finish(err)
	// Puts get their error; a failing delete is retried every ackEvery and
	// logged once per run of failures.
	if len(recs) == 0 {
		if err != nil && !s.delFailing {
			s.log.Error("deleting acknowledged records failed", "err", err)
		}
		s.delFailing = err != nil
	}
	if err != nil {
		s.lastDel = now
	}
	return err
}

// commit inserts recs and deletes the acknowledged rows (when delAck) in one
// transaction. Called with cmu held.
func (s *SQLite) commit(recs [][]byte, ack uint64, delAck bool) (err error) {
	ctx := context.Background()
	// A single statement is a transaction of its own (autocommit): the
	// BEGIN and COMMIT round trips are only paid when there are several.
	explicit := len(recs) > insertChunk || (delAck && len(recs) > 0)
	if explicit {
		if _, err := s.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return fmt.Errorf("storage: sqlite: begin: %w", err)
		}
		defer func() {
			if err != nil {
				if _, rerr := s.conn.ExecContext(ctx, "ROLLBACK"); rerr != nil {
					s.log.Error("rollback failed", "err", rerr)
				}
			}
		}()
	}
	s.mu.Lock()
	seq := s.end
	s.mu.Unlock()
	ts := max(time.Now().UnixMilli(), s.lastTS) // never decreasing, so that expiry is a prefix
	var added int64
	for rest := recs; len(rest) > 0; {
		n := min(len(rest), insertChunk)
		st, err := s.insertStmt(n)
		if err != nil {
			return err
		}
		s.args = s.args[:0]
		for i, r := range rest[:n] {
			if r == nil {
				r = []byte{} // NOT NULL: an empty record is an empty blob
			}
			s.args = append(s.args, int64(seq)+int64(i), ts, r)
			added += int64(len(r)) + rowOverhead
		}
		_, err = st.ExecContext(ctx, s.args...)
		clear(s.args)
		if err != nil {
			return fmt.Errorf("storage: sqlite: insert: %w", err)
		}
		seq += uint64(n)
		rest = rest[n:]
	}
	if delAck {
		if _, err := s.del.ExecContext(ctx, int64(ack)); err != nil {
			return fmt.Errorf("storage: sqlite: delete acknowledged: %w", err)
		}
	}
	if explicit {
		if _, err := s.conn.ExecContext(ctx, "COMMIT"); err != nil {
			return fmt.Errorf("storage: sqlite: commit: %w", err)
		}
	}
	s.lastTS = ts
	s.usedEst += added
	if delAck {
		s.deleted = ack
		s.lastDel = time.Now()
	}
	if len(recs) > 0 {
		s.dirty = s.cfg.FsyncInterval > 0
		s.commits++
		s.mu.Lock()
		s.advance(seq, len(recs))
		s.mu.Unlock()
	}
	return nil
}

// insertStmt returns the INSERT statement of n rows.
func (s *SQLite) insertStmt(n int) (*sql.Stmt, error) {
	if st := s.ins[n]; st != nil {
		return st, nil
	}
	var b strings.Builder
	b.WriteString("INSERT INTO iotgw_records (seq, ts, data) VALUES (?, ?, ?)")
	for range n - 1 {
		b.WriteString(", (?, ?, ?)")
	}
	st, err := s.conn.PrepareContext(context.Background(), b.String())
	if err != nil {
		return nil, fmt.Errorf("storage: sqlite: prepare insert: %w", err)
	}
	s.ins[n] = st
	return st, nil
}

// syncWAL fsyncs the write-ahead log (FsyncInterval > 0, synchronous=NORMAL):
// what is committed to it then survives a power loss too. Called by the
// committer with cmu held; the fsync itself runs without it, so that Puts and
// Read go on meanwhile. A commit made during the fsync may not be covered: the
// log then stays dirty and is fsynced again within FsyncInterval of start.
func (s *SQLite) syncWAL() {
	if s.wal == nil {
		w, err := os.Open(s.cfg.Path + "-wal")
		if err != nil {
			s.log.Error("cannot open the write-ahead log to fsync it", "err", err)
			return
		}
		s.wal = w
	}
	start, commits := time.Now(), s.commits
	s.cmu.Unlock()
	err := s.wal.Sync()
	s.cmu.Lock()
	if err != nil {
		s.dirty = false // not retried: the storage has failed
		s.log.Error("fsync of the write-ahead log failed", "err", err)
		s.mu.Lock()
		if s.failed == nil {
			s.failed = fmt.Errorf("storage: sqlite: fsync: %w", err)
		}
		s.mu.Unlock()
		return
	}
	s.dirty = s.commits != commits
	s.lastSync = start
}

// deleteBelow deletes every row before seq and reports how many of them were
// not acknowledged.
func (s *SQLite) deleteBelow(seq uint64) (uint64, error) {
	if seq <= s.deleted {
		return 0, nil
	}
	if _, err := s.del.ExecContext(context.Background(), int64(seq)); err != nil {
		return 0, err
	}
	s.deleted = seq
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropBelow(seq), nil
}

// expire deletes the records older than TTL. Timestamps never decrease with the
// sequence, so the expired records are a prefix, found by binary search.
func (s *SQLite) expire(now time.Time) error {
	cutoff := now.Add(-s.cfg.TTL).UnixMilli()
	ctx := context.Background()
	s.mu.Lock()
	lo, hi := s.deleted, s.end // find the first seq in [lo, hi) with ts >= cutoff
	s.mu.Unlock()
	for lo < hi {
		mid := lo + (hi-lo)/2
		var seq, ts int64
		err := s.conn.QueryRowContext(ctx, "SELECT seq, ts FROM iotgw_records WHERE seq >= ? ORDER BY seq LIMIT 1", int64(mid)).Scan(&seq, &ts)
		if errors.Is(err, sql.ErrNoRows) {
			hi = mid
			continue
		}
		if err != nil {
			return err
		}
		if ts >= cutoff {
			hi = mid
		} else {
			lo = uint64(seq) + 1
		}
	}
	n, err := s.deleteBelow(lo)
	if err != nil {
		return err
	}
	if n > 0 {
		s.mu.Lock()
		s.stats.Expired += n
		total := s.stats.Expired
		s.mu.Unlock()
		s.log.Warn("deleted records older than messages_ttl_in_days", "records", n, "expired_total", total, "ttl", s.cfg.TTL)
	}
	return nil
}

// usedBytes is the size of the database pages in use.
func (s *SQLite) usedBytes() (int64, error) {
	ctx := context.Background()
	var pages, free, size int64
	if err := s.conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return 0, err
	}
	if err := s.conn.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
		return 0, err
	}
	if err := s.conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size); err != nil {
		return 0, err
	}
	return (pages - free) * size, nil
}

// enforceSize deletes the oldest rows while the pages in use exceed the limit,
// down to 95% of it so that the next check is not due at once. Freed pages are
// reused, so the file does not grow past the limit.
func (s *SQLite) enforceSize() error {
	limit := s.cfg.SizeLimitBytes
	target := limit - limit/20
	for range 8 {
		used, err := s.usedBytes()
		if err != nil {
			return err
		}
		s.usedEst = used
		if used <= limit {
			return nil
		}
		s.mu.Lock()
		rows := s.end - s.deleted
		s.mu.Unlock()
		if rows == 0 {
			return nil
		}
		per := max(1, used/int64(rows))
		n := uint64((used-target+per-1)/per) + 1
		dropped, err := s.deleteBelow(s.deleted + min(n, rows))
		if err != nil {
			return err
		}
		if dropped > 0 {
			s.mu.Lock()
			s.stats.Dropped += dropped
			total := s.stats.Dropped
			s.mu.Unlock()
			s.log.Warn("sqlite storage over size_limit: deleted the oldest records", "records", dropped,
				"dropped_total", total, "size_limit_bytes", limit)
		}
	}
	return nil
}

// Read implements Storage.
func (s *SQLite) Read(ctx context.Context, max int) (Batch, error) {
	if max < 1 {
		max = 1
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		cur, end, gen, err := s.waitData(ctx)
		if err != nil {
			return Batch{}, err
		}
		limit := min(cur+uint64(max), end)
		b, err := s.readRows(cur, limit)
		if err != nil {
			return Batch{}, err
		}
		if s.moveCursor(gen, cur, limit) {
			return b, nil
		}
	}
}

// readRows reads the rows [cur, limit), which are committed. It shares the
// connection with the committer, under cmu.
func (s *SQLite) readRows(cur, limit uint64) (Batch, error) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	rows, err := s.rsel.QueryContext(context.Background(), int64(cur), int64(limit))
	if err != nil {
		return Batch{}, fmt.Errorf("storage: sqlite: read: %w", err)
	}
	defer rows.Close()
	b := Batch{Records: make([][]byte, 0, limit-cur), First: cur, End: limit}
	for rows.Next() {
		var seq int64
		var data []byte
		if err := rows.Scan(&seq, &data); err != nil {
			return Batch{}, fmt.Errorf("storage: sqlite: read: %w", err)
		}
		if data == nil {
			data = []byte{}
		}
		b.Records = append(b.Records, data)
	}
	if err := rows.Err(); err != nil {
		return Batch{}, fmt.Errorf("storage: sqlite: read: %w", err)
	}
	return b, nil
}

// Close implements Storage: it commits what is queued, deletes the acknowledged
// rows and closes the database.
func (s *SQLite) Close() error {
	if !s.markClosed() {
		return nil
	}
	<-s.done
	// Read may be between its wait and its query, a Put between its check of
	// closed and its commit: close under their locks.
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.closeDB()
}
