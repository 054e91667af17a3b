// Package gateway is the iotgw core service: it loads connectors, keeps the device
// registry, runs the uplink pipeline (connector → storage → platform) and routes
// downlink requests (attribute updates, RPCs) from the platform to the connector that
// owns the device.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotgw/iotgw/config"
	"github.com/iotgw/iotgw/connector"
	"github.com/iotgw/iotgw/metrics"
	"github.com/iotgw/iotgw/storage"
	"github.com/iotgw/iotgw/tbmqtt"
)

// Options tunes a Gateway beyond what tb_gateway.json says.
type Options struct {
	// Logger is the gateway's logger (slog.Default when nil).
	Logger *slog.Logger
	// Version is reported to the platform and by gateway_version.
	Version string
	// Storage replaces the storage that cfg.Storage describes (tests, benchmarks).
	Storage storage.Storage
	// ConnectorFactory resolves connector types that no built-in provides (the
	// extensions folder). It may be nil.
	ConnectorFactory func(connectorType, class string) (connector.Factory, bool)
	// Converters wraps the built-in converters for one connector type (the extensions
	// folder's script converters). It may be nil.
	Converters func(base connector.Converters, connectorType string) connector.Converters
	// ExtensionsDir is passed to connectors in connector.Config.
	ExtensionsDir string
	// LoggerFor returns the logger of one connector at its logLevel; nil: Logger.
	LoggerFor func(name, level string) *slog.Logger
	// BatchSize is how many storage records the publisher reads at once (default:
	// the storage's read count from the config, at least 512).
	BatchSize int
	// InflightBatches is how many batches may await their PUBACKs at once (default 4).
	InflightBatches int
	// StopTimeout bounds the graceful stop (default 4 s).
	StopTimeout time.Duration
	// Now is the clock of report strategies and inactivity checks (time.Now when
	// nil); tests pass a fake clock.
	Now func() time.Time
}

// Gateway is the running core. Create it with New and run it with Run.
type Gateway struct {
	cfg   *config.Gateway
	opts  Options
	log   *slog.Logger
	store storage.Storage
	ownSt bool // the gateway opened store and closes it
	mqtt  *tbmqtt.Client

	mu         sync.RWMutex
	connectors map[string]*slot   // by connector name
	devices    map[string]*device // by device name
	stopping   atomic.Bool

	encPool sync.Pool // *encodeBuf for SendToStorage

	stats   Stats
	latency *metrics.Histogram // publish → PUBACK per batch

	rpcReplies sync.Map // replyKey → chan struct{} (the per-device worker waits on it)
	rpcSeq     atomic.Int64
	// gatewayReplied marks connector-type RPC ids already answered (id → struct{}).
	gatewayReplied sync.Map

	sessionMaxPayload atomic.Int64
	limits            atomic.Pointer[sessionLimits] // the platform's rate limits, once known
	readErrLogged     atomic.Int64                  // unix ns of the last storage read error logged
	workers           sync.WaitGroup                // per-device downlink workers

	platform // report strategies, filtering, inactivity, registry, statistics
	// life ends when Run has closed storage: puts blocked on back-pressure give up.
	life    context.Context
	endLife context.CancelFunc
}

type slot struct {
	entry config.Connector
	conn  connector.Connector

	// per-connector statistics, counted in SendToStorage
	msgs, values atomic.Uint64
}

type device struct {
	name, typ string // as the connector calls it
	pname     string // name on the platform: name, or the platform's rename
	conn      *slot
	announced bool // a connect record was stored in this run
	inactive  bool // silent for the inactivity timeout: disconnected

	// downlink queue, served by one worker goroutine at a time (serializes RPCs
	// per device while different devices run concurrently)
	queue   chan func()
	running bool
}

// Stats are the gateway's counters, read with atomic loads.
type Stats struct {
	MessagesReceived atomic.Uint64 // ConvertedData from connectors
	ValuesReceived   atomic.Uint64 // datapoints from connectors
	MessagesSent     atomic.Uint64 // MQTT messages acknowledged by the broker
	ValuesSent       atomic.Uint64 // datapoints (telemetry values and attributes) acknowledged
	RecordsSent      atomic.Uint64 // storage records acknowledged
	DroppedInvalid   atomic.Uint64 // data refused (no device name, bad record)
	DroppedDownlink  atomic.Uint64 // downlink requests dropped (queue full)
	RPCs             atomic.Uint64 // RPC requests routed to connectors
	RPCReplies       atomic.Uint64
	PublishFailures  atomic.Uint64 // batches sent again after a lost connection
	RateLimitWaits   atomic.Uint64 // publishes delayed to stay within the platform's rate limits
	DroppedFiltered  atomic.Uint64 // messages of devices refused by deviceFiltering
	ValuesSuppressed atomic.Uint64 // datapoints held back by a report strategy
	ValuesResent     atomic.Uint64 // datapoints re-sent by a periodic report strategy
	Disconnects      atomic.Uint64 // inactive devices reported disconnected
	AttrRequests     atomic.Uint64 // attribute requests sent to the platform
}

type encodeBuf struct{ rec, scratch []byte }

// New prepares a gateway from a loaded configuration: storage and platform client.
// Connectors are created (and validated) here, opened by Run.
func New(cfg *config.Gateway, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.InflightBatches <= 0 {
		opts.InflightBatches = 4
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 4 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = max(cfg.Storage.ReadRecordsCount, cfg.Storage.MaxReadRecords, 512)
	}
	g := &Gateway{
		cfg:        cfg,
		opts:       opts,
		log:        opts.Logger,
		connectors: make(map[string]*slot),
		devices:    make(map[string]*device),
	}
	g.encPool.New = func() any { return &encodeBuf{} }
	g.latency = metrics.NewHistogram("iotgw_publish_latency_seconds", "Time from publishing a batch to its last PUBACK.", latencyBuckets)
	g.life, g.endLife = context.WithCancel(context.Background())

	tb := cfg.Thingsboard
	client, err := tbmqtt.New(tbmqtt.Options{
		Host: tb.Host, Port: tb.Port, TLS: tb.TLS,
		Security: tbmqtt.Security{
			Type: tb.Security.Type, AccessToken: tb.Security.AccessToken,
			ClientID: tb.Security.ClientID, Username: tb.Security.Username, Password: tb.Security.Password,
			CACert: tb.Security.CACert, Cert: tb.Security.Cert, PrivateKey: tb.Security.PrivateKey,
		},
		KeepAlive: time.Duration(tb.KeepAlive) * time.Second,
		Logger:    g.log.With("component", "tbmqtt"),
	})
	if err != nil {
		return nil, fmt.Errorf("platform client: %w", err)
	}
	g.mqtt = client

	for _, entry := range cfg.Connectors {
		s, err := g.newConnector(entry)
		if err != nil {
			return nil, err
		}
		g.connectors[entry.Name] = s
	}
	if err := g.initPlatform(); err != nil {
		return nil, err
	}

	if opts.Storage != nil {
		g.store = opts.Storage
	} else {
		st, err := OpenStorage(cfg, g.log.With("component", "storage"))
		if err != nil {
			return nil, err
		}
		g.store, g.ownSt = st, true
	}
	return g, nil
}

// Resolve finds the factory for a connector entry: a built-in of that type and
// class, a process connector in the extensions folder, or the built-in default
// class of the type (a Python config may name its own class for a built-in type).
func Resolve(entry config.Connector, ext func(string, string) (connector.Factory, bool)) (connector.Factory, error) {
	if f, ok := connector.Lookup(entry.Type, entry.Class); ok {
		return f, nil
	}
	if ext != nil {
		if f, ok := ext(entry.Type, entry.Class); ok {
			return f, nil
		}
	}
	if f, ok := connector.Lookup(entry.Type, ""); ok {
		return f, nil
	}
	class := entry.Class
	if class == "" {
		class = "<class>"
	}
	return nil, fmt.Errorf("connectors[%s].type: connector type %q is not supported yet (built in: %s; or put an executable %s/%s in the extensions folder)",
		entry.Name, entry.Type, strings.Join(connector.Types(), ", "), entry.Type, class)
}

func (g *Gateway) newConnector(entry config.Connector) (*slot, error) {
	f, err := Resolve(entry, g.opts.ConnectorFactory)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.cfg.Path, err)
	}
	log := g.log.With("connector", entry.Name)
	if g.opts.LoggerFor != nil {
		log = g.opts.LoggerFor(entry.Name, entry.LogLevel)
	}
	var conv connector.Converters = connector.BuiltinConverters{Logger: log}
	if g.opts.Converters != nil {
		conv = g.opts.Converters(conv, entry.Type)
	}
	c, err := f(g, connector.Config{
		Name: entry.Name, Type: entry.Type, Class: entry.Class, ID: entry.ID,
		Path: entry.Path, Raw: entry.Raw, ExtensionsDir: g.opts.ExtensionsDir,
		Logger: log, Converters: conv,
	})
	if err != nil {
		return nil, fmt.Errorf("connector %q: %w", entry.Name, err)
	}
	return &slot{entry: entry, conn: c}, nil
}

// OpenStorage opens the storage that cfg.Storage describes.
func OpenStorage(cfg *config.Gateway, log *slog.Logger) (storage.Storage, error) {
	s := cfg.Storage
	switch s.Type {
	case "", "memory":
		return storage.NewMemory(storage.MemoryConfig{MaxRecords: s.MaxRecordsCount}, log), nil
	case "file":
		st, err := storage.OpenFile(storage.FileConfig{
			Dir: s.DataFolderPath, MaxFileCount: s.MaxFileCount, MaxRecordsPerFile: s.MaxRecordsPerFile,
			FsyncInterval: time.Duration(s.FsyncIntervalMS) * time.Millisecond,
		}, log)
		if err != nil {
			return nil, fmt.Errorf("file storage %s: %w", s.DataFolderPath, err)
		}
		return st, nil
	case "sqlite":
		st, err := storage.OpenSQLite(storage.SQLiteConfig{
			Path:           s.DataFilePath,
			TTLCheck:       time.Duration(s.MessagesTTLCheckInHours) * time.Hour,
			TTL:            time.Duration(s.MessagesTTLInDays) * 24 * time.Hour,
			SizeLimitBytes: int64(s.SizeLimitMB) << 20,
			MaxDBAmount:    s.MaxDBAmount,
			FsyncInterval:  time.Duration(s.FsyncIntervalMS) * time.Millisecond,
		}, log)
		if err != nil {
			return nil, fmt.Errorf("sqlite storage %s: %w", s.DataFilePath, err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("storage.type: unknown storage type %q (expected memory, file or sqlite)", s.Type)
}

// Storage returns the gateway's storage.
func (g *Gateway) Storage() storage.Storage { return g.store }

// Counters returns the gateway's counters.
func (g *Gateway) Counters() *Stats { return &g.stats }

// Connected reports whether the platform connection is up.
func (g *Gateway) Connected() bool { return g.mqtt.Connected() }

// Connectors returns the running connectors.
func (g *Gateway) Connectors() []connector.Connector {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]connector.Connector, 0, len(g.connectors))
	for _, s := range g.connectors {
		out = append(out, s.conn)
	}
	return out
}

// Run connects to the platform, opens the connectors and moves data until ctx is
// done; then it stops the connectors, flushes what it can within the stop timeout,
// disconnects and closes storage. It returns nil after a clean stop.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.endLife()
	g.subscribe()

	var wg sync.WaitGroup
	mqttCtx, stopMQTT := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMQTT()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := g.mqtt.Run(mqttCtx); err != nil && !errors.Is(err, context.Canceled) {
			g.log.Error("platform client stopped", "err", err)
		}
	}()

	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		g.publish(pubCtx)
	}()

	platCtx, stopPlat := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPlat()
	platDone := g.runPlatform(platCtx)

	for _, s := range g.sortedSlots() {
		if err := s.conn.Open(ctx); err != nil {
			g.log.Error("connector failed to open", "connector", s.entry.Name, "err", err)
			continue
		}
		g.log.Info("connector started", "connector", s.entry.Name, "type", s.entry.Type)
	}

	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		g.watchConfig(ctx)
	}()

	<-ctx.Done()
	<-watchDone
	g.mu.Lock() // see goWorker
	g.stopping.Store(true)
	g.mu.Unlock()
	deadline := time.Now().Add(g.opts.StopTimeout)
	g.log.Info("stopping", "stored", g.store.Len())

	g.closeConnectors(time.Until(deadline) / 2)
	// Periodic re-sends, inactivity checks and statistics stop before the last
	// flush; the registry file gets its final write.
	stopPlat()
	<-platDone
	// Let the publisher drain what it can before the deadline; what is left stays
	// in storage (file, sqlite) for the next run.
	for g.store.Len() > 0 && g.mqtt.Connected() && time.Now().Before(deadline.Add(-500*time.Millisecond)) {
		time.Sleep(20 * time.Millisecond)
	}
	stopPub()
	<-pubDone
	g.waitWorkers(time.Until(deadline))
	stopMQTT()
	wg.Wait()
	g.endLife()
	if g.ownSt {
		if err := g.store.Close(); err != nil {
			g.log.Error("closing storage", "err", err)
		}
	}
	g.log.Info("stopped", "left_in_storage", g.store.Len())
	return nil
}

func (g *Gateway) sortedSlots() []*slot {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]*slot, 0, len(g.connectors))
	for _, e := range g.cfg.Connectors {
		if s, ok := g.connectors[e.Name]; ok {
			out = append(out, s)
		}
	}
	return out
}

func (g *Gateway) closeConnectors(timeout time.Duration) {
	var wg sync.WaitGroup
	for _, s := range g.sortedSlots() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.conn.Close(); err != nil {
				g.log.Error("connector close", "connector", s.entry.Name, "err", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		g.log.Warn("connectors did not stop in time", "timeout", timeout)
	}
}

func (g *Gateway) waitWorkers(timeout time.Duration) {
	done := make(chan struct{})
	go func() { g.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(max(timeout, 100*time.Millisecond)):
		g.log.Warn("downlink requests still running at stop")
	}
}
