package extensions

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"time"

	starlarkjson "go.starlark.net/lib/json"
	starlarkmath "go.starlark.net/lib/math"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// predeclared are the names a converter script sees besides Starlark's universe:
// binary decoding helpers modelled on Python's int.from_bytes and struct module.
var predeclared = starlark.StringDict{
	"int_from_bytes":   starlark.NewBuiltin("int_from_bytes", intFromBytes),
	"int_to_bytes":     starlark.NewBuiltin("int_to_bytes", intToBytes),
	"float_from_bytes": starlark.NewBuiltin("float_from_bytes", floatFromBytes),
	"hexlify":          starlark.NewBuiltin("hexlify", hexlify),
	"unhexlify":        starlark.NewBuiltin("unhexlify", unhexlify),
	"now_ms":           starlark.NewBuiltin("now_ms", nowMS),
	"struct": &starlarkstruct.Module{Name: "struct", Members: starlark.StringDict{
		"unpack":      starlark.NewBuiltin("struct.unpack", structUnpack),
		"unpack_from": starlark.NewBuiltin("struct.unpack_from", structUnpackFrom),
		"pack":        starlark.NewBuiltin("struct.pack", structPack),
		"calcsize":    starlark.NewBuiltin("struct.calcsize", structCalcsize),
	}},
	"json": starlarkjson.Module,
	"math": starlarkmath.Module,
}

func byteOrder(s string) (binary.ByteOrder, error) {
	switch s {
	case "big":
		return binary.BigEndian, nil
	case "little":
		return binary.LittleEndian, nil
	}
	return nil, fmt.Errorf(`byteorder must be "big" or "little", got %q`, s)
}

// intFromBytes is int_from_bytes(b, byteorder="big", signed=False), as Python's
// int.from_bytes: any length, two's complement when signed.
func intFromBytes(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var b starlark.Bytes
	order := "big"
	signed := false
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "b", &b, "byteorder?", &order, "signed?", &signed); err != nil {
		return nil, err
	}
	if _, err := byteOrder(order); err != nil {
		return nil, fmt.Errorf("%s: %w", fn.Name(), err)
	}
	buf := []byte(b)
	if order == "little" {
		buf = reversed(buf)
	}
	if len(buf) <= 8 {
		var u uint64
		for _, c := range buf {
			u = u<<8 | uint64(c)
		}
		if signed && len(buf) > 0 && buf[0]&0x80 != 0 {
			shift := uint(64 - 8*len(buf))
			return starlark.MakeInt64(int64(u<<shift) >> shift), nil
		}
		return starlark.MakeUint64(u), nil
	}
	n := new(big.Int).SetBytes(buf)
	if signed && buf[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(buf))))
	}
	return starlark.MakeBigInt(n), nil
}

func reversed(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}

// intToBytes is int_to_bytes(n, length, byteorder="big", signed=False), as Python's
// int.to_bytes; a value that does not fit is an error.
func intToBytes(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var n starlark.Int
	var length int
	order := "big"
	signed := false
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "n", &n, "length", &length, "byteorder?", &order, "signed?", &signed); err != nil {
		return nil, err
	}
	if _, err := byteOrder(order); err != nil {
		return nil, fmt.Errorf("%s: %w", fn.Name(), err)
	}
	if length < 0 || length > 1024 {
		return nil, fmt.Errorf("%s: length %d out of range 0..1024", fn.Name(), length)
	}
	v := n.BigInt()
	bits := uint(8 * length)
	lo, hi := new(big.Int), new(big.Int).Lsh(big.NewInt(1), bits) // unsigned: [0, 2^bits)
	if signed {
		hi.Rsh(hi, 1)
		lo.Neg(hi)
	}
	if v.Cmp(lo) < 0 || v.Cmp(hi) >= 0 {
		return nil, fmt.Errorf("%s: %s does not fit in %d bytes (signed=%t)", fn.Name(), v, length, signed)
	}
	if v.Sign() < 0 {
		v.Add(v, new(big.Int).Lsh(big.NewInt(1), bits))
	}
	out := v.FillBytes(make([]byte, length))
	if order == "little" {
		out = reversed(out)
	}
	return starlark.Bytes(out), nil
}

// floatFromBytes is float_from_bytes(b, byteorder="big"): IEEE 754, 4 or 8 bytes.
func floatFromBytes(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var b starlark.Bytes
	order := "big"
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "b", &b, "byteorder?", &order); err != nil {
		return nil, err
	}
	bo, err := byteOrder(order)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn.Name(), err)
	}
	switch len(b) {
	case 4:
		return starlark.Float(math.Float32frombits(bo.Uint32([]byte(b)))), nil
	case 8:
		return starlark.Float(math.Float64frombits(bo.Uint64([]byte(b)))), nil
	}
	return nil, fmt.Errorf("%s: need 4 or 8 bytes, got %d", fn.Name(), len(b))
}

// hexlify(b) returns the lower-case hex text of bytes.
func hexlify(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var b starlark.Bytes
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 1, &b); err != nil {
		return nil, err
	}
	return starlark.String(hex.EncodeToString([]byte(b))), nil
}

// unhexlify(s) returns the bytes of hex text.
func unhexlify(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s string
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 1, &s); err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn.Name(), err)
	}
	return starlark.Bytes(b), nil
}

// nowMS() returns the time in milliseconds since the Unix epoch, for "ts".
func nowMS(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return starlark.MakeInt64(time.Now().UnixMilli()), nil
}
