package extensions

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/iotgw/iotgw/connector"
)

// MaxSteps bounds the Starlark steps of one convert call (and of a script's top-level
// code at load), so that an endless loop in a script stops with an error instead of
// stalling its connector. A typical binary-frame converter takes a few hundred.
const MaxSteps = 1_000_000

// maxFrameHex is how many bytes of a frame an error message shows in hex.
const maxFrameHex = 64

// fileOptions are the Starlark dialect of converter scripts: while loops, sets,
// recursion and top-level control flow are allowed, since the step bound catches the
// endless ones.
var fileOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}

// Script is a compiled converter script that defines convert(config, data). Its
// global values are frozen after load, so that many devices call it concurrently,
// each call on a fresh thread.
type Script struct {
	path    string
	convert *starlark.Function
	log     *slog.Logger
}

// LoadScript compiles the script at path and runs its top-level code once. A syntax
// error is returned as "FILE:LINE:COL: message"; a script that does not define
// convert(config, data) is an error too.
func LoadScript(path string, log *slog.Logger) (*Script, error) {
	if log == nil {
		log = slog.Default()
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("script converter: %w", err)
	}
	_, prog, err := starlark.SourceProgramOptions(fileOptions, path, src, predeclared.Has)
	if err != nil {
		// syntax.Error and resolve errors already read "FILE:LINE:COL: msg".
		return nil, err
	}
	s := &Script{path: path, log: log.With("script", path)}
	thread := s.thread()
	globals, err := prog.Init(thread, predeclared)
	if err != nil {
		return nil, s.evalError("top level", err, thread, nil)
	}
	globals.Freeze()
	fn, ok := globals["convert"].(*starlark.Function)
	if !ok {
		return nil, fmt.Errorf("%s: the script must define a function convert(config, data)", path)
	}
	if n := fn.NumParams(); n < 2 && !fn.HasVarargs() {
		pos := fn.Position()
		return nil, fmt.Errorf("%s:%d:%d: convert must take two parameters (config, data), it takes %d", path, pos.Line, pos.Col, n)
	}
	s.convert = fn
	return s, nil
}

// Path returns the script's file.
func (s *Script) Path() string { return s.path }

// thread returns a fresh thread with the step bound; print() goes to the log.
func (s *Script) thread() *starlark.Thread {
	t := &starlark.Thread{
		Name: s.path,
		Print: func(_ *starlark.Thread, msg string) {
			s.log.Info(msg)
		},
	}
	t.SetMaxExecutionSteps(MaxSteps)
	return t
}

// call runs convert(config, data) on a fresh thread.
func (s *Script) call(config, data starlark.Value, frame []byte) (starlark.Value, error) {
	thread := s.thread()
	v, err := starlark.Call(thread, s.convert, starlark.Tuple{config, data}, nil)
	if err != nil {
		return nil, s.evalError("convert", err, thread, frame)
	}
	return v, nil
}

// evalError makes a script error name the script, the line in it where the error
// happened (innermost frame of this script) and the frame, in hex.
func (s *Script) evalError(where string, err error, thread *starlark.Thread, frame []byte) error {
	pos := s.path
	msg := err.Error()
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		msg = ee.Msg
		for i := 0; i < len(ee.CallStack); i++ {
			fr := ee.CallStack.At(i)
			if fr.Pos.Filename() == s.path {
				pos = fmt.Sprintf("%s:%d:%d", s.path, fr.Pos.Line, fr.Pos.Col)
				break
			}
		}
	}
	if thread.ExecutionSteps() >= MaxSteps {
		msg = fmt.Sprintf("stopped after %d steps (an endless loop?)", MaxSteps)
	}
	out := fmt.Sprintf("%s: %s: %s", pos, where, msg)
	if frame != nil {
		out += " (frame " + frameHex(frame) + ")"
	}
	return errors.New(out)
}

// frameHex shows a frame in hex, cut to maxFrameHex bytes.
func frameHex(b []byte) string {
	if len(b) > maxFrameHex {
		return fmt.Sprintf("%x... (%d bytes)", b[:maxFrameHex], len(b))
	}
	return fmt.Sprintf("%x", b)
}

// Uplink returns an uplink converter for one device whose JSON configuration is
// deviceConfig; the script receives it as a (frozen) dict.
func (s *Script) Uplink(deviceConfig []byte) (connector.UplinkConverter, error) {
	cfg, err := configDict(deviceConfig)
	if err != nil {
		return nil, fmt.Errorf("%s: device configuration: %w", s.path, err)
	}
	u := &scriptUplink{s: s, cfg: cfg, deviceType: "default"}
	u.deviceName = dictString(cfg, "deviceName", "name")
	if t := dictString(cfg, "deviceType", "type"); t != "" {
		u.deviceType = t
	}
	return u, nil
}

// Downlink returns a downlink converter for one device.
func (s *Script) Downlink(deviceConfig []byte) (connector.DownlinkConverter, error) {
	cfg, err := configDict(deviceConfig)
	if err != nil {
		return nil, fmt.Errorf("%s: device configuration: %w", s.path, err)
	}
	return &scriptDownlink{s: s, device: cfg}, nil
}

// configDict decodes a device's JSON object into a frozen dict (an empty one for no
// configuration).
func configDict(b []byte) (*starlark.Dict, error) {
	if len(strings.TrimSpace(string(b))) == 0 {
		d := starlark.NewDict(0)
		d.Freeze()
		return d, nil
	}
	v, err := jsonToStarlark(b)
	if err != nil {
		return nil, err
	}
	d, ok := v.(*starlark.Dict)
	if !ok {
		return nil, fmt.Errorf("expected a JSON object, got %s", v.Type())
	}
	d.Freeze()
	return d, nil
}

// dictString returns the first of keys that holds a string in d.
func dictString(d *starlark.Dict, keys ...string) string {
	for _, k := range keys {
		v, found, _ := d.Get(starlark.String(k))
		if s, ok := v.(starlark.String); found && ok {
			return string(s)
		}
	}
	return ""
}

type scriptUplink struct {
	s                      *Script
	cfg                    *starlark.Dict
	deviceName, deviceType string
}

// Convert implements connector.UplinkConverter: convert(config, data) with data as
// bytes must return a dict, or None to ignore the frame.
func (u *scriptUplink) Convert(data []byte) (*connector.ConvertedData, error) {
	v, err := u.s.call(u.cfg, starlark.Bytes(data), data)
	if err != nil {
		return nil, err
	}
	out := &connector.ConvertedData{DeviceName: u.deviceName, DeviceType: u.deviceType}
	if v == starlark.None {
		return out, nil
	}
	if err := fillConverted(out, v); err != nil {
		return nil, fmt.Errorf("%s: convert returned %s (frame %s)", u.s.path, err, frameHex(data))
	}
	return out, nil
}

// fillConverted reads the dict convert returned into out.
func fillConverted(out *connector.ConvertedData, v starlark.Value) error {
	d, ok := v.(*starlark.Dict)
	if !ok {
		return fmt.Errorf("a %s, expected a dict or None", v.Type())
	}
	for _, item := range d.Items() {
		k, ok := item[0].(starlark.String)
		if !ok {
			return fmt.Errorf("a dict with key %s, expected string keys", item[0].String())
		}
		switch string(k) {
		case "deviceName", "deviceType":
			s, ok := item[1].(starlark.String)
			if !ok {
				return fmt.Errorf("%q = %s, expected a string", string(k), item[1].Type())
			}
			if k == "deviceName" {
				out.DeviceName = string(s)
			} else {
				out.DeviceType = string(s)
			}
		case "telemetry":
			if err := fillTelemetry(out, item[1]); err != nil {
				return err
			}
		case "attributes":
			dps, err := datapoints("attributes", item[1])
			if err != nil {
				return err
			}
			out.Attributes = append(out.Attributes, dps...)
		default:
			return fmt.Errorf("unknown key %q (expected deviceName, deviceType, telemetry, attributes)", string(k))
		}
	}
	return nil
}

// fillTelemetry accepts {k: v} (one entry, ts 0: "now") or [{"ts": ms, "values": {k: v}}].
func fillTelemetry(out *connector.ConvertedData, v starlark.Value) error {
	switch t := v.(type) {
	case *starlark.Dict:
		dps, err := datapoints("telemetry", t)
		if err != nil {
			return err
		}
		if len(dps) > 0 {
			out.Telemetry = append(out.Telemetry, connector.TelemetryEntry{Values: dps})
		}
		return nil
	case *starlark.List, starlark.Tuple:
		it := starlark.Iterate(t)
		defer it.Done()
		var e starlark.Value
		for i := 0; it.Next(&e); i++ {
			entry, ok := e.(*starlark.Dict)
			if !ok {
				return fmt.Errorf("telemetry[%d] = %s, expected a dict {\"ts\": ms, \"values\": {...}}", i, e.Type())
			}
			var te connector.TelemetryEntry
			for _, item := range entry.Items() {
				switch item[0] {
				case starlark.String("ts"):
					ts, err := starlark.AsInt32(item[1])
					if err != nil {
						var i64 int64
						if err2 := starlark.AsInt(item[1], &i64); err2 != nil {
							return fmt.Errorf("telemetry[%d].ts = %s, expected an integer (ms)", i, item[1].String())
						}
						te.TS = i64
					} else {
						te.TS = int64(ts)
					}
				case starlark.String("values"):
					dps, err := datapoints(fmt.Sprintf("telemetry[%d].values", i), item[1])
					if err != nil {
						return err
					}
					te.Values = dps
				default:
					return fmt.Errorf("telemetry[%d] has unknown key %s (expected ts, values)", i, item[0].String())
				}
			}
			if len(te.Values) > 0 {
				out.Telemetry = append(out.Telemetry, te)
			}
		}
		return nil
	}
	return fmt.Errorf("telemetry = %s, expected a dict or a list", v.Type())
}

// datapoints reads a dict of key → value, in the dict's order.
func datapoints(what string, v starlark.Value) ([]connector.Datapoint, error) {
	d, ok := v.(*starlark.Dict)
	if !ok {
		return nil, fmt.Errorf("%s = %s, expected a dict", what, v.Type())
	}
	items := d.Items()
	out := make([]connector.Datapoint, 0, len(items))
	for _, item := range items {
		k, ok := item[0].(starlark.String)
		if !ok {
			return nil, fmt.Errorf("%s has key %s, expected string keys", what, item[0].String())
		}
		val, err := toValue(item[1])
		if err != nil {
			return nil, fmt.Errorf("%s[%q]: %w", what, string(k), err)
		}
		out = append(out, connector.Datapoint{Key: string(k), Value: val})
	}
	return out, nil
}

// toValue converts a Starlark value to a telemetry value: bytes become hex text (as
// the serial connector's default type does), lists and dicts become JSON.
func toValue(v starlark.Value) (connector.Value, error) {
	switch t := v.(type) {
	case starlark.NoneType:
		return connector.Value{}, nil
	case starlark.Bool:
		return connector.Bool(bool(t)), nil
	case starlark.Int:
		if i, ok := t.Int64(); ok {
			return connector.Int(i), nil
		}
		return connector.RawJSON(t.String()), nil
	case starlark.Float:
		return connector.Float(float64(t)), nil
	case starlark.String:
		return connector.String(string(t)), nil
	case starlark.Bytes:
		return connector.String(fmt.Sprintf("%x", string(t))), nil
	}
	b, err := appendStarlarkJSON(nil, v, 0)
	if err != nil {
		return connector.Value{}, err
	}
	return connector.RawJSON(string(b)), nil
}

type scriptDownlink struct {
	s      *Script
	device *starlark.Dict
}

// Convert implements connector.DownlinkConverter: convert(config, data) gets the
// matched serverSideRpc/attributeUpdates entry as config, with the device's own
// configuration under config["device"], and must return bytes, a string (sent as
// UTF-8) or a list of byte values.
func (d *scriptDownlink) Convert(cfg map[string]any, data any) ([]byte, error) {
	c := starlark.NewDict(len(cfg) + 1)
	for _, k := range sortedKeys(cfg) {
		v, err := goToStarlark(cfg[k])
		if err != nil {
			return nil, fmt.Errorf("%s: config[%q]: %w", d.s.path, k, err)
		}
		_ = c.SetKey(starlark.String(k), v)
	}
	if _, found, _ := c.Get(starlark.String("device")); !found {
		_ = c.SetKey(starlark.String("device"), d.device)
	}
	c.Freeze()
	sd, err := goToStarlark(data)
	if err != nil {
		return nil, fmt.Errorf("%s: data: %w", d.s.path, err)
	}
	v, err := d.s.call(c, sd, nil)
	if err != nil {
		return nil, err
	}
	switch t := v.(type) {
	case starlark.Bytes:
		return []byte(t), nil
	case starlark.String:
		return []byte(t), nil
	case *starlark.List, starlark.Tuple:
		out, err := byteList(t.(starlark.Iterable))
		if err != nil {
			return nil, fmt.Errorf("%s: convert returned %w", d.s.path, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: convert returned a %s, expected bytes, a string or a list of byte values", d.s.path, v.Type())
}

func byteList(it starlark.Iterable) ([]byte, error) {
	var out []byte
	iter := it.Iterate()
	defer iter.Done()
	var x starlark.Value
	for iter.Next(&x) {
		n, err := starlark.AsInt32(x)
		if err != nil || n < 0 || n > math.MaxUint8 {
			return nil, fmt.Errorf("a list holding %s, expected byte values 0..255", x.String())
		}
		out = append(out, byte(n))
	}
	return out, nil
}
