package connector

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValueJSON(t *testing.T) {
	for _, tc := range []struct {
		v    Value
		want string
	}{
		{Value{}, `null`},
		{String("48"), `"48"`},
		{String("a\"b\\c\n\r\t\x01<>&"), `"a\"b\\c\n\r\t\u0001<>&"`},
		{String("\u2028é"), `"\u2028é"`},
		{String("\xff"), `"\ufffd"`},
		{Int(0), `0`},
		{Int(-42), `-42`},
		{Float(48), `48`},
		{Float(0.1), `0.1`},
		{Float(-0.0000001), `-1e-7`},
		{Float(1e21), `1e+21`},
		{Float(123456789.5), `123456789.5`},
		{Float(math.NaN()), `null`},
		{Float(math.Inf(1)), `null`},
		{Bool(false), `false`},
		{Bool(true), `true`},
		{RawJSON(`{"a":[1,2]}`), `{"a":[1,2]}`},
	} {
		if got := string(tc.v.AppendJSON(nil)); got != tc.want {
			t.Errorf("%#v: got %s want %s", tc.v, got, tc.want)
		}
	}
}

// TestFloatLikeEncodingJSON checks that floats and strings are written exactly as
// encoding/json writes them (without its HTML escaping), so that no platform sees
// a difference.
func TestFloatLikeEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.5, 1e-6, 1e-7, 123.456, 1e20, 1e21, 3.14159e-10, 2.5e300, -7.25e-5} {
		want, _ := json.Marshal(f)
		if got := Float(f).AppendJSON(nil); string(got) != string(want) {
			t.Errorf("%g: got %s want %s", f, got, want)
		}
	}
	for _, s := range []string{"plain", "tab\there", "quote\"", "ünïcödé", "\x7f", "\u2029"} {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		want := strings.TrimSuffix(b.String(), "\n")
		if got := AppendJSONString(nil, s); string(got) != want {
			t.Errorf("%q: got %s want %s", s, got, want)
		}
	}
}

func TestValueOfAndBack(t *testing.T) {
	for _, tc := range []struct {
		in   any
		kind Kind
		json string
	}{
		{nil, KindNull, `null`},
		{"x", KindString, `"x"`},
		{true, KindBool, `true`},
		{7, KindInt, `7`},
		{float64(5), KindInt, `5`},
		{2.5, KindFloat, `2.5`},
		{json.Number("12345678901234567"), KindInt, `12345678901234567`},
		{json.Number("1.5"), KindFloat, `1.5`},
		{json.Number("1e400"), KindJSON, `1e400`},
		{map[string]any{"a": 1}, KindJSON, `{"a":1}`},
		{[]any{1, "b"}, KindJSON, `[1,"b"]`},
	} {
		v := ValueOf(tc.in)
		if v.Kind() != tc.kind || string(v.AppendJSON(nil)) != tc.json {
			t.Errorf("ValueOf(%#v) = kind %d %s, want kind %d %s", tc.in, v.Kind(), v.AppendJSON(nil), tc.kind, tc.json)
		}
		var back Value
		if err := json.Unmarshal([]byte(tc.json), &back); err != nil || string(back.AppendJSON(nil)) != tc.json {
			t.Errorf("UnmarshalJSON(%s) = %s, %v", tc.json, back.AppendJSON(nil), err)
		}
	}
}

func TestValueEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b Value
		want bool
	}{
		{Float(1.0), Float(1.0005), true},
		{Float(1.0), Float(1.002), false},
		{Int(1), Float(1.0004), true},
		{Int(1), Int(2), false},
		{String("a"), String("a"), true},
		{String("1"), Int(1), false},
		{Bool(true), Bool(true), true},
	} {
		if got := tc.a.Equal(tc.b, 0.001); got != tc.want {
			t.Errorf("%v == %v: got %v", tc.a.Any(), tc.b.Any(), got)
		}
	}
}

func TestValueAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	n := testing.AllocsPerRun(100, func() {
		d := ConvertedData{DeviceName: "d"}
		_ = d
		buf = Float(48.5).AppendJSON(buf[:0])
		buf = String("2430947595").AppendJSON(buf)
		buf = Int(-3).AppendJSON(buf)
	})
	if n != 0 {
		t.Fatalf("%v allocations per value encoding, want 0", n)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00\x1f", "\xff\xfe", "é\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encoded as invalid JSON %s: %v", s, b, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("round trip %q → %s → %q", s, b, back)
		}
	})
}

func TestConvertedData(t *testing.T) {
	var d ConvertedData
	if !d.Empty() {
		t.Fatal("zero ConvertedData must be empty")
	}
	d.AddTelemetry(1)
	if !d.Empty() {
		t.Fatal("an entry without values is empty")
	}
	d.AddAttribute("k", Int(0))
	if d.Empty() {
		t.Fatal("an attribute of value 0 is a value")
	}
}
