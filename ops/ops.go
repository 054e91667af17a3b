// Package ops serves the gateway's operations endpoints over HTTP for supervisors
// and monitoring: /healthz (JSON health, 200 or 503, for a container HEALTHCHECK, a
// load balancer or a remote probe) and /metrics (Prometheus text format).
//
// The server is off unless the user asks for it (iotgw run --http 127.0.0.1:PORT).
// It serves any address it is given, but warns when that address is not loopback:
// the endpoints have no authentication, and the documented setup keeps them on
// 127.0.0.1 behind whatever the site uses for remote access.
package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/iotgw/iotgw/buildinfo"
	"github.com/iotgw/iotgw/metrics"
)

// Health is the gateway's state as /healthz reports it.
type Health struct {
	// PlatformConnected is true while the MQTT session to the platform is up.
	PlatformConnected bool `json:"platformConnected"`
	// StorageDepth is the number of records waiting in storage to be sent.
	StorageDepth int `json:"storageDepth"`
	// Connectors lists every configured connector.
	Connectors []ConnectorHealth `json:"connectors"`
}

// ConnectorHealth is one connector's state.
type ConnectorHealth struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Connected bool   `json:"connected"`
	Stopped   bool   `json:"stopped"`
}

// OK reports whether the gateway is healthy: connected to the platform, and every
// connector connected to its devices. A stopped connector is not connected, so it
// makes the gateway unhealthy: a supervisor should see it.
func (h Health) OK() bool {
	if !h.PlatformConnected {
		return false
	}
	for _, c := range h.Connectors {
		if !c.Connected {
			return false
		}
	}
	return true
}

// Source gives the current health; the gateway implements it. Health is called on
// every /healthz request and must be quick and safe for concurrent use.
type Source interface {
	Health() Health
}

// healthBody is the JSON document of /healthz: Health plus a verdict and the version.
type healthBody struct {
	Status  string `json:"status"` // "ok" or "unhealthy"
	Version string `json:"version"`
	Health
}

// Timeouts of the HTTP server. Probes are tiny; these only stop a slow or stuck
// client from holding a connection and a goroutine.
const (
	readHeaderTimeout = 5 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 60 * time.Second
	shutdownTimeout   = 5 * time.Second
)

// Handler returns the HTTP handler with /healthz and, when reg is not nil, /metrics.
// Other paths answer 404, methods other than GET and HEAD 405.
func Handler(src Source, reg *metrics.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := src.Health()
		if h.Connectors == nil {
			h.Connectors = []ConnectorHealth{} // [] rather than null, for scripts
		}
		body := healthBody{Status: "ok", Version: buildinfo.Version, Health: h}
		code := http.StatusOK
		if !h.OK() {
			body.Status, code = "unhealthy", http.StatusServiceUnavailable
		}
		b, err := json.Marshal(body)
		if err != nil {
			http.Error(w, "encode health: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_, _ = w.Write(append(b, '\n')) // an error means the client went away
	})
	if reg != nil {
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			var buf bytes.Buffer
			if _, err := reg.WriteTo(&buf); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", metrics.ContentType)
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write(buf.Bytes()) // an error means the client went away
		})
	}
	return mux
}

// Server is a running ops server.
type Server struct {
	addr net.Addr
	done chan struct{}
	err  error // set before done is closed
}

// Addr returns the address the server listens on (with the real port when the
// requested one was 0).
func (s *Server) Addr() net.Addr { return s.addr }

// Wait blocks until the server has stopped after its context ended and returns the
// error that stopped it other than the normal close, if any.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// Start listens on addr and serves Handler(src, reg) until ctx is done; then it shuts
// down, letting requests in progress finish for a few seconds. The goroutines it
// starts are done when Wait returns.
func Start(ctx context.Context, addr string, src Source, reg *metrics.Registry, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ops: listen on %s: %w", addr, err)
	}
	log = log.With("addr", ln.Addr().String())
	if !loopback(ln.Addr()) {
		log.Warn("health and metrics endpoints listen on a non-loopback address; they have no authentication")
	}
	hs := &http.Server{
		Handler:           Handler(src, reg),
		ReadHeaderTimeout: readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s := &Server{addr: ln.Addr(), done: make(chan struct{})}
	var wg sync.WaitGroup
	var serveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("ops: serve on %s: %w", s.addr, err)
		}
	}()
	go func() {
		defer close(s.done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			// Requests still running after the grace period are cut off.
			hs.Close()
		}
		wg.Wait()
		s.err = serveErr
		log.Info("ops server stopped")
	}()
	log.Info("ops server listening")
	return s, nil
}

// loopback reports whether a is a TCP address on a loopback interface.
func loopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// Serve is Start for callers that need only the address: the server stops when ctx
// is done. Use Start to wait for the stop.
func Serve(ctx context.Context, addr string, src Source, reg *metrics.Registry, log *slog.Logger) (net.Addr, error) {
	s, err := Start(ctx, addr, src, reg, log)
	if err != nil {
		return nil, err
	}
	return s.Addr(), nil
}
