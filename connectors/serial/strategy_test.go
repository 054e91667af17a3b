package serial

import (
	"testing"

	"github.com/iotgw/iotgw/connector"
)

func TestDatapointInheritsDeviceStrategyFields(t *testing.T) {
	c, err := newUplink([]byte(`{"name":"D","reportStrategy":{"type":"ON_REPORT_PERIOD","reportPeriod":2000,"ttl":60},"telemetry":[
		{"key":"a","type":"int","untilDelimiter":","},
		{"key":"b","type":"int","fromDelimiter":",","reportStrategy":{"type":"ON_CHANGE"}},
		{"key":"c","type":"int","fromDelimiter":",","reportStrategy":{"type":"ON_CHANGE_OR_REPORT_PERIOD","reportPeriod":500}}]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := c.ConvertAt([]byte("1,2\n"), 5)
	want := []connector.ReportStrategy{
		{Type: "ON_REPORT_PERIOD", ReportPeriod: 2000, TTL: 60},
		{Type: "ON_CHANGE", ReportPeriod: 2000, TTL: 60},
		{Type: "ON_CHANGE_OR_REPORT_PERIOD", ReportPeriod: 500, TTL: 60},
	}
	vs := d.Telemetry[0].Values
	if len(vs) != len(want) {
		t.Fatalf("%d values, want %d", len(vs), len(want))
	}
	for i, w := range want {
		if vs[i].Strategy == nil || *vs[i].Strategy != w {
			t.Errorf("%s: strategy %+v, want %+v", vs[i].Key, vs[i].Strategy, w)
		}
	}
}
