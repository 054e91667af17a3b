package devices

import (
	"log/slog"
	"sync"
	"time"
)

// DefaultSaveInterval is the least time between two writes of a Store.
const DefaultSaveInterval = time.Second

// StoreOptions configures a Store.
type StoreOptions struct {
	// Interval is the least time between two writes (DefaultSaveInterval).
	Interval time.Duration
	// Logger receives write errors (slog.Default()).
	Logger *slog.Logger
}

// Store saves a Registry to a connected_devices.json file from its own
// goroutine: every change marks the registry dirty, and the file is written at
// most once per interval, and once more on Close.
type Store struct {
	path     string
	reg      *Registry
	interval time.Duration
	log      *slog.Logger
	save     func(string, []Device) error

	dirty chan struct{}
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex // serialises writes
	written uint64     // registry version on disk
	lastErr error

	closeOnce sync.Once
	closeErr  error
}

// OpenStore starts saving reg to path. Call Close to stop; it writes what is
// still unsaved. A registry has at most one Store.
func OpenStore(path string, reg *Registry, opts StoreOptions) *Store {
	return openStore(path, reg, opts, Save)
}

// openStore lets tests count and fail the writes.
func openStore(path string, reg *Registry, opts StoreOptions, save func(string, []Device) error) *Store {
	if opts.Interval <= 0 {
		opts.Interval = DefaultSaveInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{
		path: path, reg: reg, interval: opts.Interval, log: opts.Logger, save: save,
		dirty: make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	reg.mu.Lock()
	reg.onChange = s.markDirty
	// Devices added before the store opened are written once (which also turns
	// an older file shape into the current one).
	pending := reg.version != 0
	reg.mu.Unlock()
	if pending {
		s.markDirty()
	}
	go s.run()
	return s
}

// markDirty wakes the writer; it never blocks (it runs with the registry locked).
func (s *Store) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

func (s *Store) run() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.dirty:
		}
		if err := s.Flush(); err != nil {
			s.log.Error("saving connected devices", "file", s.path, "err", err)
		}
		// At most one write per interval: later changes wait for the next turn.
		t := time.NewTimer(s.interval)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Flush writes the registry now if it changed since the last write.
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	devs, v := s.reg.snapshot()
	if v == s.written && s.lastErr == nil {
		return nil
	}
	if err := s.save(s.path, devs); err != nil {
		s.lastErr = err
		return err
	}
	s.written, s.lastErr = v, nil
	return nil
}

// Close stops the writer goroutine, waits for it and writes what is unsaved. It
// is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.closeErr = s.Flush()
	})
	return s.closeErr
}
