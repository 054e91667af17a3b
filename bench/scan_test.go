package main

import (
	"fmt"
	"reflect"
	"testing"
)

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }

func TestScanTelemetry(t *testing.T) {
	type hit struct {
		dev       string
		seq, sent int64
	}
	tests := []struct {
		name    string
		payload string
		want    []hit
	}{
		{"iotgw", `{"bench-0000":[{"ts":1,"values":{"T":21.5,"seq":1,"sent":100}},{"ts":2,"values":{"T":20,"seq":2,"sent":200}}],"bench-0001":[{"ts":3,"values":{"seq":7,"sent":300,"T":1}}]}`,
			[]hit{{"bench-0000", 1, 100}, {"bench-0000", 2, 200}, {"bench-0001", 7, 300}}},
		{"spaces and strings", `{ "d" : [ { "ts" : 1 , "values" : { "seq" : "5" , "sent" : 6.0 } } ] }`, []hit{{"d", 5, 6}}},
		{"values in the entry", `{"d":[{"seq":1,"sent":2}]}`, []hit{{"d", 1, 2}}},
		{"escaped name", `{"a\"b":[{"values":{"seq":1,"sent":2,"s":"x,\"}"}}]}`, []hit{{`a\"b`, 1, 2}}},
		{"missing sent", `{"d":[{"values":{"seq":1}}]}`, nil},
		{"truncated", `{"d":[{"values":{"seq":1,"sent":2`, nil},
		{"attributes shape", `{"d":{"seq":1,"sent":2}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []hit
			scanTelemetry([]byte(tt.payload), func(dev []byte, seq, sent int64) { got = append(got, hit{string(dev), seq, sent}) })
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	if got, want := string(appendFrame(nil, 17, 1763820000123456)), "T=21.7;seq=17;sent=1763820000123456\n"; got != want {
		t.Errorf("frame %q, want %q", got, want)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}
