// Package logging sets up log/slog for the gateway: a text or JSON handler, the
// ThingsBoard gateway's level names (TRACE … CRITICAL, NONE), per-component levels,
// and a limiter for errors that repeat.
//
// # Per-component levels
//
// A connector's "logLevel" must hold for that connector alone: DEBUG must show its
// debug lines while the gateway runs at INFO, and ERROR must hide its info lines. A
// slog handler checks its level in Enabled, before Handle, and offers no way to derive
// a handler at another level. So the trick is: New builds the real (text or JSON)
// handler at LevelTrace, the lowest level there is, so that it lets everything
// through, and wraps it in a small handler whose Enabled applies the wanted level.
// WithLevel unwraps that and wraps the same real handler again with another level.
// Records reach the real handler only through a wrapper, so each logger filters at
// exactly its own level, and all loggers share one output and one set of options.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Levels beyond slog's four, matching the ThingsBoard gateway's names.
const (
	// LevelTrace is TRACE: finer than DEBUG (every frame, every byte).
	LevelTrace = slog.LevelDebug - 4
	// LevelCritical is CRITICAL: above ERROR.
	LevelCritical = slog.LevelError + 4
	// LevelNone is NONE: a level above every record, so nothing is logged.
	LevelNone = slog.Level(1 << 30)
)

// ParseLevel reads a ThingsBoard level name, in any case: TRACE, DEBUG, INFO,
// WARNING (or WARN), ERROR, CRITICAL (or FATAL, Python's alias), NONE (or OFF).
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE":
		return LevelTrace, nil
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	case "CRITICAL", "FATAL":
		return LevelCritical, nil
	case "NONE", "OFF":
		return LevelNone, nil
	}
	return 0, fmt.Errorf("logging: unknown level %q (want TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL or NONE)", s)
}

// LevelName returns the ThingsBoard name of l: TRACE, DEBUG, INFO, WARNING, ERROR,
// CRITICAL, NONE; levels in between are written as slog does ("INFO+2").
func LevelName(l slog.Level) string {
	switch l {
	case LevelTrace:
		return "TRACE"
	case slog.LevelWarn:
		return "WARNING"
	case LevelCritical:
		return "CRITICAL"
	case LevelNone:
		return "NONE"
	}
	return l.String()
}

// New returns a logger writing to w in format "text" (the default when format is
// empty) or "json", enabled from level up. Loggers derived from it with WithLevel
// may go below level.
func New(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{
		Level: LevelTrace, // the real handler lets everything through; see package doc
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey && len(groups) == 0 {
				if l, ok := a.Value.Any().(slog.Level); ok {
					a.Value = slog.StringValue(LevelName(l))
				}
			}
			return a
		},
	}
	var h slog.Handler
	switch format {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("logging: unknown log format %q (want text or json)", format)
	}
	return slog.New(&levelHandler{base: h, level: level}), nil
}

// WithLevel returns a logger that logs what l logs (same output, same attributes and
// groups) but filtered at level instead of l's level, lower or higher. For l made by
// New (or derived from it) this works in both directions. For a logger from
// elsewhere, records are forwarded to its handler's Handle, which for the standard
// handlers does not check the level again; build such a handler at LevelTrace.
func WithLevel(l *slog.Logger, level slog.Level) *slog.Logger {
	return WithLeveler(l, level)
}

// WithLeveler is WithLevel with a level that can change while the logger is in use,
// such as a *slog.LevelVar updated on a configuration reload.
func WithLeveler(l *slog.Logger, level slog.Leveler) *slog.Logger {
	h := l.Handler()
	if lh, ok := h.(*levelHandler); ok {
		h = lh.base
	}
	return slog.New(&levelHandler{base: h, level: level})
}

// levelHandler filters records at its own level and hands the rest to base, which
// was built at the lowest level.
type levelHandler struct {
	base  slog.Handler
	level slog.Leveler
}

func (h *levelHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *levelHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.base.Handle(ctx, r)
}

func (h *levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &levelHandler{base: h.base.WithAttrs(attrs), level: h.level}
}

func (h *levelHandler) WithGroup(name string) slog.Handler {
	return &levelHandler{base: h.base.WithGroup(name), level: h.level}
}
