package tbmqtt

import (
	"encoding/json"
	"testing"
)

func TestPayloads(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"connect", ConnectPayload("Sensor A", "thermo"), `{"device":"Sensor A","type":"thermo"}`},
		{"connect default type", ConnectPayload("D", ""), `{"device":"D","type":"default"}`},
		{"connect escapes", ConnectPayload(`a"b\c<&>`+"\n", "t"), `{"device":"a\"b\\c<&>\n","type":"t"}`},
		{"connect utf8", ConnectPayload("Zähler №1", "t"), `{"device":"Zähler №1","type":"t"}`},
		{"disconnect", DisconnectPayload("D"), `{"device":"D"}`},
		{"rpc object", RPCReplyPayload("D", 7, []byte(`{"ok": true, "v": [1, 2]}`)), `{"device":"D","id":7,"data":{"ok":true,"v":[1,2]}}`},
		{"rpc empty", RPCReplyPayload("D", 0, nil), `{"device":"D","id":0,"data":{}}`},
		{"rpc blank", RPCReplyPayload("D", 1, []byte("  \n")), `{"device":"D","id":1,"data":{}}`},
		{"rpc string value", RPCReplyPayload("D", 2, []byte(`"done"`)), `{"device":"D","id":2,"data":{"result":"done"}}`},
		{"rpc number value", RPCReplyPayload("D", 3, []byte(`25.5`)), `{"device":"D","id":3,"data":{"result":25.5}}`},
		{"rpc array value", RPCReplyPayload("D", 4, []byte(`[1, 2]`)), `{"device":"D","id":4,"data":{"result":[1,2]}}`},
		{"rpc not json", RPCReplyPayload("D", 5, []byte(`OK 25.5`)), `{"device":"D","id":5,"data":{"result":"OK 25.5"}}`},
		{"rpc error shape", RPCReplyPayload("Dev 1", 12, []byte(`{"error":"Device Dev 1 not found","success":false}`)), `{"device":"Dev 1","id":12,"data":{"error":"Device Dev 1 not found","success":false}}`},
		{"rpc negative id", RPCReplyPayload("D", -1, []byte(`{}`)), `{"device":"D","id":-1,"data":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got  %s\nwant %s", tt.got, tt.want)
			}
			if !json.Valid(tt.got) {
				t.Errorf("%s is not valid JSON", tt.got)
			}
		})
	}
}

func TestRPCReplyDataIsAlwaysObject(t *testing.T) {
	for _, data := range []string{``, `{}`, `"s"`, `1`, `true`, `null`, `[{}]`, `{"a":`, "\xff\xfe", `{"a":1} trailing`} {
		var v struct {
			Device string         `json:"device"`
			ID     int            `json:"id"`
			Data   map[string]any `json:"data"`
		}
		out := RPCReplyPayload("D", 9, []byte(data))
		if err := json.Unmarshal(out, &v); err != nil || v.Data == nil || v.Device != "D" || v.ID != 9 {
			t.Errorf("data %q: %s does not decode to an object reply (%v)", data, out, err)
		}
	}
}

func TestTopicHelpers(t *testing.T) {
	if got := DeviceRPCResponseTopic(42); got != "v1/devices/me/rpc/response/42" {
		t.Errorf("DeviceRPCResponseTopic = %s", got)
	}
	if got := DeviceAttributesRequestTopic(3); got != "v1/devices/me/attributes/request/3" {
		t.Errorf("DeviceAttributesRequestTopic = %s", got)
	}
	tests := []struct {
		topic string
		parse func(string) (int, bool)
		id    int
		ok    bool
	}{
		{"v1/devices/me/rpc/request/15", DeviceRPCRequestID, 15, true},
		{"v1/devices/me/rpc/request/", DeviceRPCRequestID, 0, false},
		{"v1/devices/me/rpc/request/+1", DeviceRPCRequestID, 0, false},
		{"v1/devices/me/rpc/request/1/x", DeviceRPCRequestID, 0, false},
		{"v1/devices/me/rpc/response/15", DeviceRPCRequestID, 0, false},
		{"v1/devices/me/attributes/response/8", DeviceAttributesResponseID, 8, true},
		{"v1/devices/me/attributes/response/99999999999999999999", DeviceAttributesResponseID, 0, false},
	}
	for _, tt := range tests {
		id, ok := tt.parse(tt.topic)
		if id != tt.id || ok != tt.ok {
			t.Errorf("%s: got %d %v, want %d %v", tt.topic, id, ok, tt.id, tt.ok)
		}
	}
}
