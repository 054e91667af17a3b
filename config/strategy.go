package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/iotgw/iotgw/connector"
)

// reportStrategyTypes are the valid "reportStrategy.type" values.
var reportStrategyTypes = []string{
	connector.OnReceived, connector.OnChange, connector.OnReportPeriod,
	connector.OnChangeOrReportPeriod, connector.Disabled,
}

// ValidateReportStrategy checks a report strategy found at path (for example
// "devices[0].reportStrategy"): the type is one of ON_RECEIVED, ON_CHANGE,
// ON_REPORT_PERIOD, ON_CHANGE_OR_REPORT_PERIOD, DISABLED (upper case), the periodic
// types have reportPeriod > 0, and reportPeriod and ttl are not negative. It checks
// every level alike: a level never inherits the period of the level above. A nil
// rs is valid (the level above applies). The error is an *Errors whose items have
// an empty File, so that they print as "PATH.KEY: ..."; callers that know the file
// set it.
func ValidateReportStrategy(path string, rs *connector.ReportStrategy) error {
	return errorsOrNil(validateReportStrategy("", path, rs))
}

func validateReportStrategy(file, path string, rs *connector.ReportStrategy) []*Error {
	if rs == nil {
		return nil
	}
	var errs []*Error
	add := func(p, msg string) { errs = append(errs, &Error{File: file, Path: p, Msg: msg}) }
	switch rs.Type {
	case connector.OnReceived, connector.OnChange, connector.Disabled:
	case connector.OnReportPeriod, connector.OnChangeOrReportPeriod:
		if rs.ReportPeriod <= 0 {
			add(joinPath(path, "reportPeriod"), fmt.Sprintf(
				"missing or not positive for %s (expected a period in milliseconds > 0, got %d)",
				rs.Type, rs.ReportPeriod))
		}
	case "":
		add(joinPath(path, "type"), "missing (expected one of "+
			strings.Join(reportStrategyTypes, ", ")+", got nothing)")
	default:
		add(joinPath(path, "type"), "invalid value (expected one of "+
			strings.Join(reportStrategyTypes, ", ")+", got "+strconv.Quote(rs.Type)+")")
	}
	if rs.ReportPeriod < 0 && rs.Type != connector.OnReportPeriod && rs.Type != connector.OnChangeOrReportPeriod {
		add(joinPath(path, "reportPeriod"), fmt.Sprintf(
			"negative (expected a period in milliseconds >= 0, got %d)", rs.ReportPeriod))
	}
	if rs.TTL < 0 {
		add(joinPath(path, "ttl"), fmt.Sprintf("negative (expected seconds >= 0, got %d)", rs.TTL))
	}
	return errs
}

// ParseReportStrategy decodes and validates a "reportStrategy" object found at path
// in a connector file: {type, reportPeriod (ms), ttl (s)}; "aggregationFunction"
// is accepted and ignored. The type is accepted in any case and returned in upper
// case; numbers may be given as numeric strings. null gives (nil, nil). Unknown
// keys are ignored (a misspelt reportPeriod still fails the periodic types' check).
// Errors are *Errors, as for ValidateReportStrategy.
func ParseReportStrategy(path string, raw json.RawMessage) (*connector.ReportStrategy, error) {
	n, perr := parseJSON("", raw)
	if perr != nil {
		return nil, &Errors{List: []*Error{{Path: path, Msg: "invalid JSON (" + perr.Msg + ")", Err: perr}}}
	}
	w := &walker{}
	rs := w.reportStrategy(n, path)
	if len(w.errs) > 0 {
		return nil, &Errors{List: w.errs}
	}
	if errs := validateReportStrategy("", path, rs); len(errs) > 0 {
		return nil, &Errors{List: errs}
	}
	return rs, nil
}

// reportStrategy decodes a report strategy object (nil when absent or null).
// Unknown keys are warned about; validation is left to validateReportStrategy.
func (w *walker) reportStrategy(n *node, path string) *connector.ReportStrategy {
	rs := &connector.ReportStrategy{}
	ok := w.object(n, path, []field{
		{"type", func(n *node, p string) {
			w.str(n, p, &rs.Type)
			rs.Type = strings.ToUpper(strings.TrimSpace(rs.Type))
		}},
		{"reportPeriod", func(n *node, p string) { w.int64Field(n, p, &rs.ReportPeriod) }},
		{"ttl", func(n *node, p string) { w.int64Field(n, p, &rs.TTL) }},
		{"aggregationFunction", nil},
	})
	if !ok {
		return nil
	}
	return rs
}

// Log levels beyond slog's four, for the Python gateway's TRACE and CRITICAL, and
// NONE, which silences a logger.
const (
	LevelTrace    = slog.LevelDebug - 4
	LevelCritical = slog.LevelError + 4
	LevelNone     = slog.Level(1 << 30)
)

// logLevels are the valid "logLevel" values (compared in upper case).
var logLevels = []string{"TRACE", "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "NONE"}

// ValidLogLevel reports whether s is a valid "logLevel" value, in any case.
func ValidLogLevel(s string) bool {
	u := strings.ToUpper(strings.TrimSpace(s))
	for _, l := range logLevels {
		if u == l {
			return true
		}
	}
	return false
}

// SlogLevel maps a "logLevel" value (any case) to a slog level: TRACE is
// LevelTrace (DEBUG-4), DEBUG, INFO, WARNING or WARN, ERROR, CRITICAL is
// LevelCritical (ERROR+4), NONE is LevelNone (nothing is logged). An empty or
// unknown value is INFO; Load rejects unknown values before they get here.
func SlogLevel(s string) slog.Level {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE":
		return LevelTrace
	case "DEBUG":
		return slog.LevelDebug
	case "WARNING", "WARN":
		return slog.LevelWarn
	case "ERROR":
		return slog.LevelError
	case "CRITICAL":
		return LevelCritical
	case "NONE":
		return LevelNone
	}
	return slog.LevelInfo
}
