// Package report applies the ThingsBoard gateway's report strategies to uplink
// data: which datapoints go to the platform now, and which cached values are
// re-sent periodically.
//
// # Strategies
//
// A "reportStrategy" {type, reportPeriod (ms), ttl (s)} can be set at gateway,
// connector, device and datapoint level (connector.Datapoint.Strategy); the most
// specific level that names a type wins. reportPeriod and ttl are each taken from
// the most specific level that sets them, so a datapoint that only says
// {"type":"ON_REPORT_PERIOD"} inherits the device's, connector's or gateway's
// period. Every key is handled on its own, telemetry and attributes separately.
//
//   - ON_RECEIVED (default): everything is sent; nothing is cached.
//   - ON_CHANGE: a value is sent when it differs from the last value SENT for that
//     device and key (numbers within 0.001, so a slow drift is still reported once
//     it adds up to more than the tolerance).
//   - ON_REPORT_PERIOD: incoming values only update the cache; the latest value of
//     each key is sent every reportPeriod.
//   - ON_CHANGE_OR_REPORT_PERIOD: sent on change, and the last sent value is sent
//     again when reportPeriod passed without a send.
//   - DISABLED: at connector, device or datapoint level it means ON_RECEIVED
//     (SPEC §5). At gateway level it switches report strategies off altogether:
//     every datapoint is sent as received and the lower levels are not consulted.
//     This is what the Python gateway 3.8 does: with a DISABLED gateway strategy it
//     creates no report strategy service and connectors check
//     gateway.get_report_strategy_service() for None.
//
// The first value of a key is always sent at once, whatever the strategy (as in
// Python), so the platform does not wait a period for it. Periodic re-sends keep
// the value's original ts (SPEC §5) unless Options.ResendWithCurrentTS is set;
// a ts of 0 stays 0, which the gateway stamps with the send time.
//
// # Cache and scheduler
//
// Each cached value expires ttl after its last update (DefaultTTL, 24 h, when no
// level sets ttl): an expired ON_CHANGE key sends its next value as a first value,
// and periodic re-sends of a device that went silent stop after ttl. The cache is
// bounded (Options.MaxEntries); past the bound the value updated longest ago is
// evicted. Forget and Rename follow device deletion and renaming.
//
// One scheduler serves every key: a min-heap of deadlines (next re-send or
// expiry) driven by Run, a single goroutine with a single timer. Tick(now) does
// one step of that work and returns the re-sends, so tests drive the engine with
// a fake clock (Options.Now) and no sleeping. Filter is lock-free and
// allocation-free when every level that applies is ON_RECEIVED.
//
// # Differences from the Python gateway 3.8
//
//   - DISABLED below gateway level sends everything; Python sends the first value
//     and then drops every later one (no branch handles DISABLED).
//   - A periodic type without reportPeriod inherits the upper levels' period (or
//     DefaultReportPeriod); Python sets it to max(0, 1) ms and re-sends every
//     millisecond. The configuration loader rejects such files anyway.
//   - The period is exact; Python subtracts 10 ms from the gateway period and fires
//     50 ms early.
//   - ON_CHANGE compares numbers within 0.001; Python compares with ==.
//   - The cache expires (ttl) and is bounded; Python's grows for ever and its
//     periodic thread polls every key every 10 ms.
//   - Periodic re-sends keep the original ts; Python stamps them with the current
//     time.
//   - Telemetry and attributes with the same key are separate entries.
package report
