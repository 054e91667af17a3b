package report

import (
	"strings"
	"time"

	"github.com/iotgw/iotgw/connector"
)

// kind is a parsed report strategy type, so that the hot path compares bytes, not
// strings.
type kind uint8

const (
	kindReceived kind = iota
	kindChange
	kindPeriod
	kindChangeOrPeriod
	kindDisabled
)

func (k kind) periodic() bool { return k == kindPeriod || k == kindChangeOrPeriod }

// parseKind maps a "type" to a kind. The configuration loader already upper-cases
// and validates the type; an empty or unknown type is ON_RECEIVED, so that a
// strategy the engine does not know never loses data.
func parseKind(s string) kind {
	switch s {
	case "", connector.OnReceived:
		return kindReceived
	case connector.OnChange:
		return kindChange
	case connector.OnReportPeriod:
		return kindPeriod
	case connector.OnChangeOrReportPeriod:
		return kindChangeOrPeriod
	case connector.Disabled:
		return kindDisabled
	}
	if u := strings.ToUpper(s); u != s {
		return parseKind(u)
	}
	return kindReceived
}

// resolved is the strategy that applies to one datapoint.
type resolved struct {
	kind   kind
	period time.Duration
	ttl    time.Duration
}

// resolve applies the levels, most specific first: the type comes from the most
// specific level that names one, reportPeriod and ttl each from the most specific
// level that sets them (> 0), else the engine's defaults. DISABLED below the gateway
// level means ON_RECEIVED (SPEC §5); gateway-level DISABLED never gets here.
func (e *Engine) resolve(dp, dev, conn *connector.ReportStrategy) resolved {
	levels := [4]*connector.ReportStrategy{dp, dev, conn, &e.gw}
	r := resolved{}
	typed := false
	for _, l := range levels {
		if l == nil {
			continue
		}
		if !typed && l.Type != "" {
			r.kind = parseKind(l.Type)
			typed = true
		}
		if r.period == 0 && l.ReportPeriod > 0 {
			r.period = time.Duration(l.ReportPeriod) * time.Millisecond
		}
		if r.ttl == 0 && l.TTL > 0 {
			r.ttl = time.Duration(l.TTL) * time.Second
		}
	}
	if r.kind == kindDisabled {
		r.kind = kindReceived
	}
	if r.period == 0 {
		r.period = e.opts.DefaultReportPeriod
	}
	if r.ttl == 0 {
		r.ttl = e.opts.DefaultTTL
	}
	return r
}

// baseKind is the kind that applies to a datapoint without its own strategy.
func (e *Engine) baseKind(dev, conn *connector.ReportStrategy) kind {
	for _, l := range [3]*connector.ReportStrategy{dev, conn, &e.gw} {
		if l != nil && l.Type != "" {
			if k := parseKind(l.Type); k != kindDisabled {
				return k
			}
			return kindReceived
		}
	}
	return kindReceived
}

// needsCache reports whether any datapoint of d has its own strategy that is not
// ON_RECEIVED (or DISABLED, which means the same below gateway level).
func needsCache(d *connector.ConvertedData) bool {
	for i := range d.Telemetry {
		for j := range d.Telemetry[i].Values {
			if s := d.Telemetry[i].Values[j].Strategy; s != nil && s.Type != "" {
				if k := parseKind(s.Type); k != kindReceived && k != kindDisabled {
					return true
				}
			}
		}
	}
	for j := range d.Attributes {
		if s := d.Attributes[j].Strategy; s != nil && s.Type != "" {
			if k := parseKind(s.Type); k != kindReceived && k != kindDisabled {
				return true
			}
		}
	}
	return false
}
