package serial

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/iotgw/iotgw/connector"
)

// DownlinkConverter is the built-in SerialDownlinkConverter: it turns an RPC's params
// into the bytes written to the device, by the "type" of the serverSideRpc entry and
// the device's "byteorder".
type DownlinkConverter struct {
	little bool
	log    *slog.Logger
}

// NewDownlinkConverter makes a downlink converter for a device from its JSON object in
// the connector file. It is the factory registered as "SerialDownlinkConverter".
func NewDownlinkConverter(deviceConfig []byte, log *slog.Logger) (connector.DownlinkConverter, error) {
	if log == nil {
		log = slog.Default()
	}
	d, err := decodeObject(deviceConfig, "")
	if err != nil {
		return nil, fmt.Errorf("serial downlink converter: %w", err)
	}
	bo, _, err := d.str("byteorder")
	if err != nil {
		return nil, fmt.Errorf("serial downlink converter: %w", err)
	}
	switch strings.ToLower(bo) {
	case "", "big":
		return &DownlinkConverter{log: log}, nil
	case "little":
		return &DownlinkConverter{little: true, log: log}, nil
	}
	return nil, fmt.Errorf("serial downlink converter: %w", d.errf("byteorder", `"big" or "little"`, bo))
}

// Convert converts data by cfg["type"]: "int" to two's complement in the fewest bytes,
// "float"/"double" to IEEE 754 (4 bytes when exact, else 8), anything else to the
// UTF-8 of a string or the JSON text of another value. nil data gives no bytes.
func (c *DownlinkConverter) Convert(cfg map[string]any, data any) ([]byte, error) {
	typ, _ := cfg["type"].(string)
	if data == nil {
		return nil, nil
	}
	switch typ {
	case "int":
		x, err := toBigInt(data)
		if err != nil {
			return nil, err
		}
		return c.order(intBytes(x)), nil
	case "float", "double":
		f, err := toFloat(data)
		if err != nil {
			return nil, err
		}
		var b []byte
		if f32 := float32(f); float64(f32) == f {
			b = binary.BigEndian.AppendUint32(nil, math.Float32bits(f32))
		} else {
			b = binary.BigEndian.AppendUint64(nil, math.Float64bits(f))
		}
		return c.order(b), nil
	}
	switch t := data.(type) {
	case string:
		return []byte(t), nil
	case json.Number:
		return []byte(t.String()), nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %T as JSON: %w", data, err)
	}
	return b, nil
}

// order reverses big-endian bytes for a little-endian device.
func (c *DownlinkConverter) order(b []byte) []byte {
	if c.little {
		slices.Reverse(b)
	}
	return b
}

// intBytes encodes x big-endian in the fewest bytes, at least one. A negative x is
// two's complement (-1 is ff, -129 is ff7f); a non-negative one is unsigned, as the
// Python converter wrote it (255 is ff), so that existing device protocols keep working.
func intBytes(x *big.Int) []byte {
	if x.Sign() >= 0 {
		b := x.Bytes()
		if len(b) == 0 {
			return []byte{0}
		}
		return b
	}
	// -x-1 needs k bits, the sign one more: n = k/8 + 1 bytes.
	m := new(big.Int).Neg(x)
	m.Sub(m, big.NewInt(1))
	n := m.BitLen()/8 + 1
	v := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
	v.Add(v, x)
	b := v.Bytes()
	out := make([]byte, n)
	copy(out[n-len(b):], b)
	return out
}

// toBigInt accepts integers, integral floats, numeric strings and JSON numbers.
func toBigInt(data any) (*big.Int, error) {
	switch t := data.(type) {
	case bool:
		if t {
			return big.NewInt(1), nil
		}
		return big.NewInt(0), nil
	case int:
		return big.NewInt(int64(t)), nil
	case int64:
		return big.NewInt(t), nil
	case int32:
		return big.NewInt(int64(t)), nil
	case uint64:
		return new(big.Int).SetUint64(t), nil
	case float64:
		return floatToBig(t, data)
	case float32:
		return floatToBig(float64(t), data)
	case json.Number:
		return textToBig(t.String(), data)
	case string:
		return textToBig(t, data)
	}
	return nil, fmt.Errorf("cannot convert %s to int", describeParam(data))
}

func textToBig(s string, data any) (*big.Int, error) {
	s = strings.TrimSpace(s)
	if x, ok := new(big.Int).SetString(strings.TrimPrefix(s, "+"), 10); ok {
		return x, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("cannot convert %s to int", describeParam(data))
	}
	return floatToBig(f, data)
}

func floatToBig(f float64, data any) (*big.Int, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return nil, fmt.Errorf("cannot convert %s to int: not an integer", describeParam(data))
	}
	x, _ := big.NewFloat(f).Int(nil)
	return x, nil
}

// toFloat accepts numbers, numeric strings and JSON numbers.
func toFloat(data any) (float64, error) {
	switch t := data.(type) {
	case float64:
		return t, nil
	case float32:
		return float64(t), nil
	case int:
		return float64(t), nil
	case int64:
		return float64(t), nil
	case json.Number:
		if f, err := strconv.ParseFloat(t.String(), 64); err == nil {
			return f, nil
		}
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(t), 64); err == nil {
			return f, nil
		}
	}
	return 0, fmt.Errorf("cannot convert %s to float", describeParam(data))
}

func describeParam(data any) string {
	b, err := json.Marshal(data)
	if err != nil || len(b) > 100 {
		return fmt.Sprintf("%T", data)
	}
	return string(b)
}
