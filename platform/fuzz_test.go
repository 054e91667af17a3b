package platform

import (
	"encoding/json"
	"testing"
)

// FuzzHandle feeds arbitrary payloads to the uplink handler of every topic:
// whatever a client publishes, the platform must not panic, and what it
// stores must stay valid JSON for the HTTP API.
func FuzzHandle(f *testing.F) {
	topics := []string{TopicConnect, TopicDisconnect, TopicTelemetry, TopicAttributes, TopicAttrRequest,
		TopicRPC, TopicMeTelemetry, TopicMeAttributes, TopicMeRPCRequest + "1"}
	seeds := []struct {
		topic   uint8
		payload string
	}{
		{0, `{"device":"D","type":"T"}`},
		{1, `{"device":"D"}`},
		{2, `{"D":[{"ts":1700000000000,"values":{"humidity":48}}]}`},
		{2, `{"D":{"ts":1.5e300,"values":{"a":[1,2]}}}`},
		{2, `{"D":[{"a":1},{"ts":"x","values":{}}]}`},
		{3, `{"D":{"SerialNumber":"2430947595"}}`},
		{3, `{"device":"D","data":{"a":1}}`},
		{4, `{"id":1,"device":"D","client":true,"keys":["a"]}`},
		{5, `{"device":"D","id":1,"data":{"result":"ok"}}`},
		{5, `{"device":"D","id":1.5,"data":"x"}`},
		{6, `[{"ts":1,"values":{"x":1}}]`},
		{7, `{"a":null}`},
		{8, `{"method":"getSessionLimits","params":{}}`},
	}
	for _, s := range seeds {
		f.Add(s.topic, []byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, topic uint8, payload []byte) {
		p, err := New(Options{History: 4})
		if err != nil {
			t.Fatal(err)
		}
		p.handle("gw", topics[int(topic)%len(topics)], payload)
		for _, d := range p.Devices() {
			if _, err := json.Marshal(d); err != nil {
				t.Fatalf("device %q does not encode: %v", d.Name, err)
			}
			tel, _ := p.Telemetry(d.Name, "", 10)
			if _, err := json.Marshal(tel); err != nil {
				t.Fatalf("telemetry of %q does not encode: %v", d.Name, err)
			}
			a, _ := p.Attributes(d.Name)
			if _, err := json.Marshal(a); err != nil {
				t.Fatalf("attributes of %q do not encode: %v", d.Name, err)
			}
		}
	})
}
