package platform

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"time"
)

//go:embed web
var webFS embed.FS

// maxBody bounds request bodies of the HTTP API.
const maxBody = 1 << 20

// Handler serves the web page and the JSON API:
//
//	GET  /                                  the web page
//	GET  /api/info                          {"mqtt":ADDR,"http":ADDR}
//	GET  /api/stats                         Stats
//	GET  /api/devices                       [Device...]
//	GET  /api/devices/{name}/telemetry      ?key=K&limit=N (default 100): {"key":[{"ts","value"}...]}
//	GET  /api/devices/{name}/attributes     {"client":{...},"shared":{...}}
//	POST /api/devices/{name}/attributes     {"k":v,...} → shared attribute update
//	POST /api/devices/{name}/rpc            {"method","params","timeoutMs"} → RPCReply, 504 on timeout
//	GET  /api/events                        server-sent events, one Event per "data:" line
func (p *Platform) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFS, "web") // the path is a constant of this package
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/info", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"mqtt": p.MQTTAddr(), "http": p.HTTPAddr()})
	})
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, p.Stats())
	})
	mux.HandleFunc("GET /api/devices", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, p.Devices())
	})
	mux.HandleFunc("GET /api/devices/{name}/telemetry", p.getTelemetry)
	mux.HandleFunc("GET /api/devices/{name}/attributes", func(w http.ResponseWriter, r *http.Request) {
		a, ok := p.Attributes(r.PathValue("name"))
		if !ok {
			writeError(w, http.StatusNotFound, "unknown device")
			return
		}
		writeJSON(w, http.StatusOK, a)
	})
	mux.HandleFunc("POST /api/devices/{name}/attributes", p.postAttributes)
	mux.HandleFunc("POST /api/devices/{name}/rpc", p.postRPC)
	mux.HandleFunc("GET /api/events", p.events)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (p *Platform) getTelemetry(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: expected a positive integer", s))
			return
		}
		limit = n
	}
	t, ok := p.Telemetry(r.PathValue("name"), r.URL.Query().Get("key"), limit)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown device")
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (p *Platform) postAttributes(w http.ResponseWriter, r *http.Request) {
	var data map[string]json.RawMessage
	if err := decodeBody(r, &data); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(data) == 0 {
		writeError(w, http.StatusBadRequest, "body: expected a JSON object with at least one attribute")
		return
	}
	name := r.PathValue("name")
	if err := p.UpdateAttributes(name, data); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrUnknownDevice) {
			status = http.StatusNotFound
		}
		writeError(w, status, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": name, "data": data})
}

// RPCRequest is the body of POST /api/devices/{name}/rpc.
type RPCRequest struct {
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	TimeoutMS int             `json:"timeoutMs"`
}

func (p *Platform) postRPC(w http.ResponseWriter, r *http.Request) {
	var req RPCRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Method == "" {
		writeError(w, http.StatusBadRequest, `body: "method" is required`)
		return
	}
	if req.TimeoutMS < 0 {
		writeError(w, http.StatusBadRequest, `body: "timeoutMs" must be >= 0`)
		return
	}
	timeout := DefaultRPCTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	reply, err := p.RPC(r.Context(), r.PathValue("name"), req.Method, req.Params, timeout)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, reply)
	case errors.Is(err, ErrUnknownDevice):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrRPCTimeout):
		writeJSON(w, http.StatusGatewayTimeout, map[string]any{"error": err.Error(), "id": reply.ID, "device": reply.Device})
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

// events streams Events as server-sent events until the client goes or the
// platform closes. A comment line every 15 s keeps proxies from closing it.
func (p *Platform) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	ch, cancel := p.subscribe()
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, ": iotgw platform events\n\n")
	fl.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-p.done:
			return
		case <-ping.C:
			_, _ = io.WriteString(w, ": ping\n\n")
		case e := <-ch:
			b, err := json.Marshal(e)
			if err != nil {
				continue
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			// Send what is queued in one write, then flush once.
			for n := len(ch); n > 0; n-- {
				if b, err := json.Marshal(<-ch); err == nil {
					_, _ = fmt.Fprintf(w, "data: %s\n\n", b)
				}
			}
		}
		fl.Flush()
	}
}
