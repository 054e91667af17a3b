package gateway

import (
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/iotgw/iotgw/connector"
)

// A record is what the gateway puts into storage: one device's data, already encoded
// as the JSON fragments the gateway API messages are made of, so that the publisher
// merges records into messages by concatenation, without decoding JSON.
//
//	byte     kind (recData, recConnect, recDisconnect)
//	uvarint  len, device name
//	uvarint  len, device type
//	uvarint  telemetry values (datapoints), uvarint attributes, for statistics and
//	         the platform's datapoint rate limit
//	uvarint  len, telemetry fragment: {"ts":1,"values":{...}},{"ts":2,...}
//	uvarint  len, attributes fragment: "k":v,"k2":v2
type recordKind byte

const (
	recData       recordKind = 1
	recConnect    recordKind = 2
	recDisconnect recordKind = 3
)

// record is a decoded record; its slices point into the stored bytes.
type record struct {
	kind       recordKind
	device     []byte
	deviceType []byte
	telemetry  []byte
	attributes []byte
	telValues  int // datapoints in telemetry
	attrValues int // attributes
}

var errBadRecord = errors.New("gateway: malformed storage record")

// appendRecord encodes d as a data record. now is used for entries whose TS is 0.
// It returns b unchanged (and false) when d carries no value.
func appendRecord(b []byte, d *connector.ConvertedData, now int64, scratch []byte) ([]byte, []byte, bool) {
	tel := scratch[:0]
	for _, e := range d.Telemetry {
		if len(e.Values) == 0 {
			continue
		}
		if len(tel) > 0 {
			tel = append(tel, ',')
		}
		ts := e.TS
		if ts == 0 {
			ts = now
		}
		tel = append(tel, `{"ts":`...)
		tel = strconv.AppendInt(tel, ts, 10)
		tel = append(tel, `,"values":{`...)
		tel = appendValues(tel, e.Values)
		tel = append(tel, "}}"...)
	}
	telLen := len(tel)
	tel = appendValues(tel, d.Attributes)
	if len(tel) == 0 {
		return b, tel, false
	}
	nTel := 0
	for _, e := range d.Telemetry {
		nTel += len(e.Values)
	}
	b = append(b, byte(recData))
	b = appendBytes(b, d.DeviceName)
	b = appendBytes(b, d.DeviceType)
	b = binary.AppendUvarint(b, uint64(nTel))
	b = binary.AppendUvarint(b, uint64(len(d.Attributes)))
	b = binary.AppendUvarint(b, uint64(telLen))
	b = append(b, tel[:telLen]...)
	b = binary.AppendUvarint(b, uint64(len(tel)-telLen))
	b = append(b, tel[telLen:]...)
	return b, tel, true
}

func appendValues(b []byte, dps []connector.Datapoint) []byte {
	for i := range dps {
		if i > 0 {
			b = append(b, ',')
		}
		b = connector.AppendJSONString(b, dps[i].Key)
		b = append(b, ':')
		b = dps[i].Value.AppendJSON(b)
	}
	return b
}

// appendDeviceRecord encodes a connect or disconnect record.
func appendDeviceRecord(b []byte, kind recordKind, device, deviceType string) []byte {
	b = append(b, byte(kind))
	b = appendBytes(b, device)
	b = appendBytes(b, deviceType)
	b = binary.AppendUvarint(b, 0) // values
	b = binary.AppendUvarint(b, 0)
	b = binary.AppendUvarint(b, 0) // fragments
	return binary.AppendUvarint(b, 0)
}

func appendBytes(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) < 1 {
		return r, errBadRecord
	}
	r.kind = recordKind(b[0])
	if r.kind < recData || r.kind > recDisconnect {
		return r, errBadRecord
	}
	b = b[1:]
	var ok bool
	if r.device, b, ok = takeBytes(b); !ok || len(r.device) == 0 {
		return r, errBadRecord
	}
	if r.deviceType, b, ok = takeBytes(b); !ok {
		return r, errBadRecord
	}
	if r.telValues, b, ok = takeCount(b); !ok {
		return r, errBadRecord
	}
	if r.attrValues, b, ok = takeCount(b); !ok {
		return r, errBadRecord
	}
	if r.telemetry, b, ok = takeBytes(b); !ok {
		return r, errBadRecord
	}
	if r.attributes, b, ok = takeBytes(b); !ok || len(b) != 0 {
		return r, errBadRecord
	}
	return r, nil
}

func takeBytes(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, b, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

func takeCount(b []byte) (n int, rest []byte, ok bool) {
	v, k := binary.Uvarint(b)
	if k <= 0 || v > 1<<31 {
		return 0, b, false
	}
	return int(v), b[k:], true
}
