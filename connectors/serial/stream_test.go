package serial

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestConvertStream(t *testing.T) {
	file := []byte(`{"devices":[
		{"name":"A","type":"TA","telemetry":[{"key":"v","type":"int"}]},
		{"name":"B","delimiter":";","telemetry":[{"key":"s","type":"string","fromDelimiter":"="}],"attributes":[{"key":"raw"}]},
		{"name":"C","frameLength":2,"telemetry":[{"key":"h"}]}]}`)
	ts := regexp.MustCompile(`"ts":\d+`)
	tests := []struct {
		device, in, want string
	}{
		{"", "1\n2\nx\n3", `{"deviceName":"A","deviceType":"TA","telemetry":[{"ts":T,"values":{"v":1}}],"attributes":{}}
{"deviceName":"A","deviceType":"TA","telemetry":[{"ts":T,"values":{"v":2}}],"attributes":{}}
{"deviceName":"A","deviceType":"TA","telemetry":[],"attributes":{}}
{"deviceName":"A","deviceType":"TA","telemetry":[{"ts":T,"values":{"v":3}}],"attributes":{}}
`},
		{"B", "k=a;k=b;", `{"deviceName":"B","deviceType":"default","telemetry":[{"ts":T,"values":{"s":"a;"}}],"attributes":{"raw":"6b3d613b"}}
{"deviceName":"B","deviceType":"default","telemetry":[{"ts":T,"values":{"s":"b;"}}],"attributes":{"raw":"6b3d623b"}}
`},
		{"C", "\x01\x02\x03\x04\x05", `{"deviceName":"C","deviceType":"default","telemetry":[{"ts":T,"values":{"h":"0102"}}],"attributes":{}}
{"deviceName":"C","deviceType":"default","telemetry":[{"ts":T,"values":{"h":"0304"}}],"attributes":{}}
{"deviceName":"C","deviceType":"default","telemetry":[{"ts":T,"values":{"h":"05"}}],"attributes":{}}
`},
	}
	for _, tt := range tests {
		t.Run(tt.device, func(t *testing.T) {
			var out bytes.Buffer
			err := ConvertStream(context.Background(), "c.json", file, tt.device, strings.NewReader(tt.in), &out, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if got := ts.ReplaceAllString(out.String(), `"ts":T`); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestConvertStreamErrors(t *testing.T) {
	file := []byte(`{"devices":[{"name":"A"},{"name":"B"}]}`)
	err := ConvertStream(context.Background(), "c.json", file, "Z", strings.NewReader(""), &bytes.Buffer{}, nil)
	if err == nil || err.Error() != `c.json: no device "Z" (devices: A, B)` {
		t.Fatalf("error %v", err)
	}
	err = ConvertStream(context.Background(), "c.json", []byte(`{"devices":[{"bytesize":4}]}`), "", strings.NewReader(""), &bytes.Buffer{}, nil)
	if err == nil || err.Error() != `c.json: devices[0].bytesize: expected 5, 6, 7 or 8, got 4` {
		t.Fatalf("error %v", err)
	}
	err = ConvertStream(context.Background(), "c.json", []byte(`{"devices":[]}`), "", strings.NewReader(""), &bytes.Buffer{}, nil)
	if err == nil || err.Error() != `c.json: devices: no device configured` {
		t.Fatalf("error %v", err)
	}
}

// The guide's example through the example's file, as `iotgw convert` shows it.
func TestConvertStreamGuideExample(t *testing.T) {
	var out bytes.Buffer
	if err := ConvertStream(context.Background(), "custom_serial.json", guideConnectorFile(t), "SerialDevice1",
		strings.NewReader("48\r2430947595\n"), &out, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	got := regexp.MustCompile(`"ts":\d+`).ReplaceAllString(out.String(), `"ts":T`)
	want := `{"deviceName":"SerialDevice1","deviceType":"default","telemetry":[{"ts":T,"values":{"humidity":48}}],"attributes":{"SerialNumber":"430947595"}}` + "\n"
	if got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}
