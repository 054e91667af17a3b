package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"TRACE", slog.LevelDebug - 4, false},
		{"trace", LevelTrace, false},
		{"DEBUG", slog.LevelDebug, false},
		{"INFO", slog.LevelInfo, false},
		{" Info ", slog.LevelInfo, false},
		{"WARNING", slog.LevelWarn, false},
		{"WARN", slog.LevelWarn, false},
		{"ERROR", slog.LevelError, false},
		{"CRITICAL", slog.LevelError + 4, false},
		{"FATAL", LevelCritical, false},
		{"NONE", LevelNone, false},
		{"off", LevelNone, false},
		{"", 0, true},
		{"VERBOSE", 0, true},
		{"10", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseLevel(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if LevelNone <= LevelCritical+1000 {
		t.Errorf("LevelNone %d is not far above CRITICAL", LevelNone)
	}
}

func TestLevelName(t *testing.T) {
	for _, name := range []string{"TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NONE"} {
		l, err := ParseLevel(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := LevelName(l); got != name {
			t.Errorf("LevelName(ParseLevel(%s)) = %s", name, got)
		}
	}
	if got := LevelName(slog.LevelInfo + 2); got != "INFO+2" {
		t.Errorf("LevelName(INFO+2) = %s", got)
	}
}

var timeAttr = regexp.MustCompile(`time=\S+ `)

// lines returns the text output without the time attribute.
func lines(buf *bytes.Buffer) string { return timeAttr.ReplaceAllString(buf.String(), "") }

func TestNewText(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "text", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("started", "connectors", 2)
	log.Log(t.Context(), LevelCritical, "disk full")
	log.Warn("slow", "ms", 250)
	want := "level=INFO msg=started connectors=2\n" +
		"level=CRITICAL msg=\"disk full\"\n" +
		"level=WARNING msg=slow ms=250\n"
	if got := lines(&buf); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestNewJSON(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "json", slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	WithLevel(log, LevelTrace).With("component", "serial").WithGroup("frame").Log(t.Context(), LevelTrace, "rx", "hex", "0a0b")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if _, ok := m["time"]; !ok {
		t.Error("no time in JSON record")
	}
	delete(m, "time")
	got, _ := json.Marshal(m)
	if want := `{"component":"serial","frame":{"hex":"0a0b"},"level":"TRACE","msg":"rx"}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestNewBadFormat(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "xml", slog.LevelInfo); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("New(xml) = %v", err)
	}
	if _, err := New(&bytes.Buffer{}, "", slog.LevelInfo); err != nil {
		t.Errorf("New with empty format (text): %v", err)
	}
}

// TestWithLevel is the point of the package: a component logs at its own level,
// below or above the gateway's, through the same output.
func TestWithLevel(t *testing.T) {
	var buf bytes.Buffer
	gw, err := New(&buf, "text", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	chatty := WithLevel(gw.With("connector", "serial-a"), slog.LevelDebug)
	quiet := WithLevel(gw.With("connector", "serial-b"), slog.LevelError)
	tracer := WithLevel(chatty, LevelTrace) // re-levelling keeps the attributes
	silent := WithLevel(gw, LevelNone)

	gw.Debug("gw debug")                           // hidden: gateway at INFO
	gw.Info("gw info")                             // shown
	chatty.Debug("a dbg")                          // shown: its own level is DEBUG
	chatty.Log(t.Context(), LevelTrace, "a trace") // hidden
	quiet.Info("b info")                           // hidden: its own level is ERROR
	quiet.Warn("b warn")                           // hidden
	quiet.Error("b error")                         // shown
	tracer.Log(t.Context(), LevelTrace, "a trace 2")
	silent.Log(t.Context(), LevelCritical, "never")
	chatty.WithGroup("g").Debug("grouped", "k", 1) // derived loggers keep the level

	want := "level=INFO msg=\"gw info\"\n" +
		"level=DEBUG msg=\"a dbg\" connector=serial-a\n" +
		"level=ERROR msg=\"b error\" connector=serial-b\n" +
		"level=TRACE msg=\"a trace 2\" connector=serial-a\n" +
		"level=DEBUG msg=grouped connector=serial-a g.k=1\n"
	if got := lines(&buf); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWithLevelerDynamic(t *testing.T) {
	var buf bytes.Buffer
	gw, err := New(&buf, "text", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	var lv slog.LevelVar
	lv.Set(slog.LevelError)
	c := WithLeveler(gw, &lv)
	c.Info("before reload")
	lv.Set(slog.LevelDebug) // a configuration reload
	c.Debug("after reload")
	if got, want := lines(&buf), "level=DEBUG msg=\"after reload\"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestWithLevelForeign: a logger not made by New still gets its own level, provided
// its handler was built at the lowest level.
func TestWithLevelForeign(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: LevelTrace}))
	WithLevel(base, slog.LevelWarn).Info("hidden")
	WithLevel(base, slog.LevelWarn).Warn("shown")
	if got, want := lines(&buf), "level=WARN msg=shown\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
