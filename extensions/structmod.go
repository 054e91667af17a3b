package extensions

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"go.starlark.net/starlark"
)

// The struct module is a subset of Python's struct, enough to decode binary frames:
// byte order prefix "<" (little), ">" or "!" (big), "=" or "@" or none (native order,
// never alignment padding); codes x (pad byte), c (bytes of 1), b/B (int8/uint8),
// ? (bool), h/H (16 bits), i/I and l/L (32), q/Q (64), f (float32), d (float64),
// s (bytes; the count is the length); a decimal count may precede a code.

// structItem is one code of a format with its repeat count.
type structItem struct {
	code  byte
	count int
}

// byteOrderAppender is what binary.BigEndian, LittleEndian and NativeEndian all are.
type byteOrderAppender interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

type structFormat struct {
	order byteOrderAppender
	items []structItem
	size  int
}

func codeSize(c byte) int {
	switch c {
	case 'x', 'c', 'b', 'B', '?', 's':
		return 1
	case 'h', 'H':
		return 2
	case 'i', 'I', 'l', 'L', 'f':
		return 4
	case 'q', 'Q', 'd':
		return 8
	}
	return 0
}

// formatCache keeps parsed formats: scripts pass the same literal on every frame.
// It is bounded, as a script could also build formats on the fly.
var formatCache = struct {
	sync.RWMutex
	m map[string]*structFormat
}{m: map[string]*structFormat{}}

const maxCachedFormats = 256

// parseStructFormat returns the parsed format f, from the cache when it is there.
// A cached format is shared: it must not be modified.
func parseStructFormat(f string) (*structFormat, error) {
	formatCache.RLock()
	sf, ok := formatCache.m[f]
	formatCache.RUnlock()
	if ok {
		return sf, nil
	}
	sf, err := compileStructFormat(f)
	if err != nil {
		return nil, err
	}
	formatCache.Lock()
	if len(formatCache.m) < maxCachedFormats {
		formatCache.m[f] = sf
	}
	formatCache.Unlock()
	return sf, nil
}

func compileStructFormat(f string) (*structFormat, error) {
	sf := &structFormat{order: binary.NativeEndian}
	i := 0
	if len(f) > 0 {
		switch f[0] {
		case '<':
			sf.order, i = binary.LittleEndian, 1
		case '>', '!':
			sf.order, i = binary.BigEndian, 1
		case '=', '@':
			i = 1
		}
	}
	for i < len(f) {
		c := f[i]
		if c == ' ' {
			i++
			continue
		}
		count, hasCount := 0, false
		for i < len(f) && f[i] >= '0' && f[i] <= '9' {
			count = count*10 + int(f[i]-'0')
			hasCount = true
			if count > 1<<20 {
				return nil, fmt.Errorf("bad format %q: count too large", f)
			}
			i++
		}
		if i >= len(f) {
			return nil, fmt.Errorf("bad format %q: count without a code", f)
		}
		c = f[i]
		i++
		n := codeSize(c)
		if n == 0 {
			return nil, fmt.Errorf("bad format %q: unknown code %q", f, c)
		}
		if !hasCount {
			count = 1
		}
		sf.items = append(sf.items, structItem{code: c, count: count})
		sf.size += n * count
	}
	return sf, nil
}

// values is how many values unpack makes (and pack takes).
func (sf *structFormat) values() int {
	n := 0
	for _, it := range sf.items {
		switch it.code {
		case 'x':
		case 's':
			n++
		default:
			n += it.count
		}
	}
	return n
}

func (sf *structFormat) unpack(b []byte) starlark.Tuple {
	out := make(starlark.Tuple, 0, sf.values())
	o := sf.order
	p := 0
	for _, it := range sf.items {
		if it.code == 's' {
			out = append(out, starlark.Bytes(b[p:p+it.count]))
			p += it.count
			continue
		}
		for range it.count {
			var v starlark.Value
			switch it.code {
			case 'x':
			case 'c':
				v = starlark.Bytes(b[p : p+1])
			case 'b':
				v = starlark.MakeInt(int(int8(b[p])))
			case 'B':
				v = starlark.MakeInt(int(b[p]))
			case '?':
				v = starlark.Bool(b[p] != 0)
			case 'h':
				v = starlark.MakeInt(int(int16(o.Uint16(b[p:]))))
			case 'H':
				v = starlark.MakeInt(int(o.Uint16(b[p:])))
			case 'i', 'l':
				v = starlark.MakeInt64(int64(int32(o.Uint32(b[p:]))))
			case 'I', 'L':
				v = starlark.MakeUint64(uint64(o.Uint32(b[p:])))
			case 'q':
				v = starlark.MakeInt64(int64(o.Uint64(b[p:])))
			case 'Q':
				v = starlark.MakeUint64(o.Uint64(b[p:]))
			case 'f':
				v = starlark.Float(math.Float32frombits(o.Uint32(b[p:])))
			case 'd':
				v = starlark.Float(math.Float64frombits(o.Uint64(b[p:])))
			}
			if v != nil {
				out = append(out, v)
			}
			p += codeSize(it.code)
		}
	}
	return out
}

func structArgs(fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, offset *int) (*structFormat, []byte, error) {
	var f string
	var b starlark.Bytes
	var err error
	if offset != nil {
		err = starlark.UnpackArgs(fn.Name(), args, kwargs, "format", &f, "buffer", &b, "offset?", offset)
	} else {
		err = starlark.UnpackArgs(fn.Name(), args, kwargs, "format", &f, "buffer", &b)
	}
	if err != nil {
		return nil, nil, err
	}
	sf, err := parseStructFormat(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", fn.Name(), err)
	}
	return sf, []byte(b), nil
}

// structUnpack is struct.unpack(format, buffer): buffer must be exactly
// struct.calcsize(format) bytes.
func structUnpack(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	sf, b, err := structArgs(fn, args, kwargs, nil)
	if err != nil {
		return nil, err
	}
	if len(b) != sf.size {
		return nil, fmt.Errorf("%s: requires a buffer of %d bytes, got %d", fn.Name(), sf.size, len(b))
	}
	return sf.unpack(b), nil
}

// structUnpackFrom is struct.unpack_from(format, buffer, offset=0): buffer needs at
// least offset+calcsize(format) bytes.
func structUnpackFrom(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	offset := 0
	sf, b, err := structArgs(fn, args, kwargs, &offset)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		offset += len(b)
	}
	if offset < 0 || offset+sf.size > len(b) {
		return nil, fmt.Errorf("%s: requires a buffer of at least %d bytes at offset %d, got %d", fn.Name(), sf.size, offset, len(b))
	}
	return sf.unpack(b[offset : offset+sf.size]), nil
}

// structCalcsize is struct.calcsize(format).
func structCalcsize(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var f string
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 1, &f); err != nil {
		return nil, err
	}
	sf, err := parseStructFormat(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn.Name(), err)
	}
	return starlark.MakeInt(sf.size), nil
}

// structPack is struct.pack(format, v1, v2, ...): integers must fit their code.
func structPack(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 || len(args) < 1 {
		return nil, fmt.Errorf("%s: want (format, values...)", fn.Name())
	}
	f, ok := starlark.AsString(args[0])
	if !ok {
		return nil, fmt.Errorf("%s: format must be a string, got %s", fn.Name(), args[0].Type())
	}
	sf, err := parseStructFormat(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn.Name(), err)
	}
	vals := args[1:]
	if len(vals) != sf.values() {
		return nil, fmt.Errorf("%s: format %q takes %d values, got %d", fn.Name(), f, sf.values(), len(vals))
	}
	out := make([]byte, 0, sf.size)
	o := sf.order
	k := 0
	for _, it := range sf.items {
		if it.code == 's' {
			b, ok := vals[k].(starlark.Bytes)
			if !ok {
				return nil, fmt.Errorf("%s: value %d for 's' must be bytes, got %s", fn.Name(), k, vals[k].Type())
			}
			seg := make([]byte, it.count)
			copy(seg, b)
			out = append(out, seg...)
			k++
			continue
		}
		for range it.count {
			if it.code == 'x' {
				out = append(out, 0)
				continue
			}
			v := vals[k]
			k++
			switch it.code {
			case 'c':
				b, ok := v.(starlark.Bytes)
				if !ok || len(b) != 1 {
					return nil, fmt.Errorf("%s: value %d for 'c' must be bytes of length 1", fn.Name(), k-1)
				}
				out = append(out, b[0])
			case '?':
				out = append(out, boolByte(bool(v.Truth())))
			case 'f':
				x, ok := starlark.AsFloat(v)
				if !ok {
					return nil, fmt.Errorf("%s: value %d for 'f' must be a number, got %s", fn.Name(), k-1, v.Type())
				}
				out = o.AppendUint32(out, math.Float32bits(float32(x)))
			case 'd':
				x, ok := starlark.AsFloat(v)
				if !ok {
					return nil, fmt.Errorf("%s: value %d for 'd' must be a number, got %s", fn.Name(), k-1, v.Type())
				}
				out = o.AppendUint64(out, math.Float64bits(x))
			default:
				var n int64
				var u uint64
				signed := it.code == 'b' || it.code == 'h' || it.code == 'i' || it.code == 'l' || it.code == 'q'
				size := codeSize(it.code)
				if signed {
					if err := starlark.AsInt(v, &n); err != nil {
						return nil, fmt.Errorf("%s: value %d for %q: %w", fn.Name(), k-1, it.code, err)
					}
					lim := int64(1) << (8*size - 1)
					if size < 8 && (n < -lim || n >= lim) {
						return nil, fmt.Errorf("%s: value %d (%d) out of range for %q", fn.Name(), k-1, n, it.code)
					}
					u = uint64(n)
				} else {
					if err := starlark.AsInt(v, &u); err != nil {
						return nil, fmt.Errorf("%s: value %d for %q: %w", fn.Name(), k-1, it.code, err)
					}
					if size < 8 && u >= 1<<(8*size) {
						return nil, fmt.Errorf("%s: value %d (%d) out of range for %q", fn.Name(), k-1, u, it.code)
					}
				}
				switch size {
				case 1:
					out = append(out, byte(u))
				case 2:
					out = o.AppendUint16(out, uint16(u))
				case 4:
					out = o.AppendUint32(out, uint32(u))
				case 8:
					out = o.AppendUint64(out, u)
				}
			}
		}
	}
	return starlark.Bytes(out), nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
