package tbmqtt

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// ConnectPayload is the TopicConnect payload {"device":"D","type":"T"}. An empty
// deviceType is sent as "default", the platform's default device profile, as the
// Python gateway does.
func ConnectPayload(device, deviceType string) []byte {
	if deviceType == "" {
		deviceType = "default"
	}
	b := make([]byte, 0, len(device)+len(deviceType)+24)
	b = append(b, `{"device":`...)
	b = appendJSONString(b, device)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, deviceType)
	return append(b, '}')
}

// DisconnectPayload is the TopicDisconnect payload {"device":"D"}.
func DisconnectPayload(device string) []byte {
	b := make([]byte, 0, len(device)+14)
	b = append(b, `{"device":`...)
	b = appendJSONString(b, device)
	return append(b, '}')
}

// RPCReplyPayload is the TopicRPC reply {"device":"D","id":N,"data":DATA}. DATA is
// always a JSON object, never a JSON string (SPEC §3): a JSON object in data is
// embedded as it is (compacted); empty data gives {}; any other JSON value v gives
// {"result":v}; bytes that are not JSON give {"result":"<the bytes as a string>"}.
func RPCReplyPayload(device string, id int, data []byte) []byte {
	b := make([]byte, 0, len(device)+len(data)+40)
	b = append(b, `{"device":`...)
	b = appendJSONString(b, device)
	b = append(b, `,"id":`...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, `,"data":`...)
	b = appendObject(b, data)
	return append(b, '}')
}

// appendObject appends data as a JSON object (see RPCReplyPayload).
func appendObject(b, data []byte) []byte {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return append(b, "{}"...)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, trimmed); err != nil {
		b = append(b, `{"result":`...)
		b = appendJSONString(b, string(data))
		return append(b, '}')
	}
	if trimmed[0] == '{' {
		return append(b, buf.Bytes()...)
	}
	b = append(b, `{"result":`...)
	b = append(b, buf.Bytes()...)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string. Unlike json.Marshal it leaves <, >
// and & as they are: device names appear on the wire byte for byte. Invalid UTF-8
// becomes U+FFFD, as with encoding/json.
func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		// Encoding a Go string cannot fail; keep the output valid JSON regardless.
		return append(b, `""`...)
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...)
}
