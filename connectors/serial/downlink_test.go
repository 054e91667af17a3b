package serial

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestDownlinkConvert(t *testing.T) {
	tests := []struct {
		name      string
		byteorder string
		typ       string
		data      any
		want      string // hex
		wantErr   string
	}{
		{"fix: int 0 is one byte", "", "int", json.Number("0"), "00", ""},
		{"int 5", "", "int", json.Number("5"), "05", ""},
		{"fix: numeric string", "", "int", "5", "05", ""},
		{"numeric string with spaces and sign", "", "int", " +300 ", "012c", ""},
		{"fix: negative is two's complement", "", "int", json.Number("-1"), "ff", ""},
		{"-128 fits one byte", "", "int", json.Number("-128"), "80", ""},
		{"-129 needs two", "", "int", json.Number("-129"), "ff7f", ""},
		{"255 unsigned as Python wrote it", "", "int", json.Number("255"), "ff", ""},
		{"256", "", "int", json.Number("256"), "0100", ""},
		{"big-endian 1000", "big", "int", json.Number("1000"), "03e8", ""},
		{"little-endian 1000", "little", "int", json.Number("1000"), "e803", ""},
		{"little-endian -129", "LITTLE", "int", "-129", "7fff", ""},
		{"integral float param", "", "int", 7.0, "07", ""},
		{"json number 1e2", "", "int", json.Number("1e2"), "64", ""},
		{"beyond int64", "", "int", json.Number("18446744073709551616"), "010000000000000000", ""},
		{"bool as int", "", "int", true, "01", ""},
		{"non-integral float", "", "int", 2.5, "", "cannot convert 2.5 to int: not an integer"},
		{"text", "", "int", "abc", "", `cannot convert "abc" to int`},
		{"object", "", "int", map[string]any{"a": 1}, "", `cannot convert {"a":1} to int`},
		{"float exact in 4 bytes", "", "float", json.Number("1.5"), "3fc00000", ""},
		{"float little-endian", "little", "float", json.Number("1.5"), "0000c03f", ""},
		{"double not exact in 4 bytes", "", "double", json.Number("0.1"), "3fb999999999999a", ""},
		{"float from string", "", "float", "-2", "c0000000", ""},
		{"float from int", "", "float", 3, "40400000", ""},
		{"float NaN is 8 bytes", "", "float", math.NaN(), "7ff8000000000001", ""},
		{"float text", "", "float", "x", "", `cannot convert "x" to float`},
		{"string", "", "string", "hello\n", "68656c6c6f0a", ""},
		{"absent type: string", "", "", "AT", "4154", ""},
		{"string type, JSON number as its text", "", "string", json.Number("12.50"), "31322e3530", ""},
		{"string type, bool as JSON", "", "string", true, "74727565", ""},
		{"string type, object as JSON", "", "string", map[string]any{"pin": json.Number("1")}, hex.EncodeToString([]byte(`{"pin":1}`)), ""},
		{"nil: no bytes", "", "int", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := `{"name":"D"}`
			if tt.byteorder != "" {
				dev = `{"name":"D","byteorder":"` + tt.byteorder + `"}`
			}
			c, err := NewDownlinkConverter([]byte(dev), nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg := map[string]any{"method": "m"}
			if tt.typ != "" {
				cfg["type"] = tt.typ
			}
			got, err := c.Convert(cfg, tt.data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != tt.want {
				t.Errorf("got %x, want %s", got, tt.want)
			}
		})
	}
}

func TestDownlinkBadByteorder(t *testing.T) {
	_, err := NewDownlinkConverter([]byte(`{"byteorder":"middle"}`), nil)
	if err == nil || !strings.Contains(err.Error(), `byteorder: expected "big" or "little", got "middle"`) {
		t.Fatalf("error %v", err)
	}
}
