package tbmqtt

import (
	"strconv"
	"strings"
)

// Topics of the ThingsBoard gateway API (v1/gateway/...) and device API
// (v1/devices/me/...). See SPEC §3.
const (
	// TopicConnect announces a device behind the gateway: {"device":"D","type":"T"}.
	TopicConnect = "v1/gateway/connect"
	// TopicDisconnect tells the platform a device went away: {"device":"D"}.
	TopicDisconnect = "v1/gateway/disconnect"
	// TopicTelemetry carries telemetry of several devices: {"D":[{"ts":..,"values":{..}}]}.
	TopicTelemetry = "v1/gateway/telemetry"
	// TopicAttributes carries client attributes up ({"D":{"k":v}}) and shared
	// attribute updates down ({"device":"D","data":{"k":v}}).
	TopicAttributes = "v1/gateway/attributes"
	// TopicAttributesRequest asks the platform for attribute values of a device.
	TopicAttributesRequest = "v1/gateway/attributes/request"
	// TopicAttributesResponse carries the answers to TopicAttributesRequest.
	TopicAttributesResponse = "v1/gateway/attributes/response"
	// TopicRPC carries server-side RPCs down and their replies up.
	TopicRPC = "v1/gateway/rpc"

	// TopicDeviceTelemetry is the gateway's own telemetry (statistics).
	TopicDeviceTelemetry = "v1/devices/me/telemetry"
	// TopicDeviceAttributes is the gateway's own attributes.
	TopicDeviceAttributes = "v1/devices/me/attributes"
	// TopicDeviceRPCRequest is the prefix of RPC requests to the gateway itself; the
	// request id follows. Subscribe to TopicDeviceRPCRequest + "+".
	TopicDeviceRPCRequest = "v1/devices/me/rpc/request/"
	// TopicDeviceRPCResponse is the prefix of replies to RPC requests to the gateway
	// itself; the request id follows (see DeviceRPCResponseTopic).
	TopicDeviceRPCResponse = "v1/devices/me/rpc/response/"
	// TopicDeviceAttributesRequest is the prefix of attribute requests of the gateway
	// itself; a request id chosen by the gateway follows.
	TopicDeviceAttributesRequest = "v1/devices/me/attributes/request/"
	// TopicDeviceAttributesResponse is the prefix of answers to
	// TopicDeviceAttributesRequest; the request id follows. Subscribe to
	// TopicDeviceAttributesResponse + "+".
	TopicDeviceAttributesResponse = "v1/devices/me/attributes/response/"
)

// DeviceRPCResponseTopic is the topic of the reply to the gateway's own RPC request id.
func DeviceRPCResponseTopic(id int) string {
	return TopicDeviceRPCResponse + strconv.Itoa(id)
}

// DeviceAttributesRequestTopic is the topic of the gateway's own attribute request id.
func DeviceAttributesRequestTopic(id int) string {
	return TopicDeviceAttributesRequest + strconv.Itoa(id)
}

// DeviceRPCRequestID returns the request id of a topic received on
// TopicDeviceRPCRequest + "+", and false when the topic is not such a request.
func DeviceRPCRequestID(topic string) (int, bool) {
	return topicID(topic, TopicDeviceRPCRequest)
}

// DeviceAttributesResponseID returns the request id of a topic received on
// TopicDeviceAttributesResponse + "+", and false when the topic is not such an answer.
func DeviceAttributesResponseID(topic string) (int, bool) {
	return topicID(topic, TopicDeviceAttributesResponse)
}

func topicID(topic, prefix string) (int, bool) {
	s, ok := strings.CutPrefix(topic, prefix)
	if !ok || s == "" {
		return 0, false
	}
	// Only plain decimal ids: Atoi would accept a sign, which no platform sends.
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.Atoi(s)
	if err != nil {
		return 0, false
	}
	return id, true
}
