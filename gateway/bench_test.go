package gateway

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/iotgw/iotgw/connector"
	"github.com/iotgw/iotgw/tbmqtt"
)

// benchData is what the serial connector makes of one benchmark frame
// "T=21.5;seq=17;sent=1763820000123456\n" (see bench/).
func benchData(device string, seq int64) *connector.ConvertedData {
	vals := []connector.Datapoint{
		{Key: "T", Value: connector.Float(21.5)},
		{Key: "seq", Value: connector.Int(seq)},
		{Key: "sent", Value: connector.Int(1763820000123456 + seq)},
	}
	return &connector.ConvertedData{DeviceName: device, DeviceType: "bench",
		Telemetry: []connector.TelemetryEntry{{TS: 1763820000123, Values: vals}}}
}

// benchRecords encodes n records spread round robin over devices.
func benchRecords(tb testing.TB, n, devices int) [][]byte {
	tb.Helper()
	out := make([][]byte, n)
	for i := range out {
		rec, _, ok := appendRecord(nil, benchData(fmt.Sprintf("bench-%04d", i%devices), int64(i+1)), 1, nil)
		if !ok {
			tb.Fatal("appendRecord: no values")
		}
		out[i] = rec
	}
	return out
}

// runBatch is the publisher's per-batch work without the network: decode every
// record and merge them into messages.
func runBatch(b *batcher, recs [][]byte) (msgs, values, bytes int) {
	b.out = b.out[:0]
	for _, raw := range recs {
		r, err := decodeRecord(raw)
		if err != nil {
			panic(err)
		}
		b.add(r)
	}
	b.flush(tbmqtt.TopicTelemetry, tbmqtt.TopicAttributes)
	for _, m := range b.out {
		msgs++
		values += m.values
		bytes += len(m.payload)
	}
	return msgs, values, bytes
}

func TestBenchBatchesAreValid(t *testing.T) {
	for _, tc := range []struct{ devices, maxSize int }{{1, 8196}, {100, 8196}, {100, 65536}, {1000, 8196}} {
		t.Run(fmt.Sprintf("devices=%d,max=%d", tc.devices, tc.maxSize), func(t *testing.T) {
			recs := benchRecords(t, 512, tc.devices)
			b := newBatcher(tc.maxSize)
			_, values, _ := runBatch(b, recs)
			if want := 512 * len(benchData("x", 1).Telemetry[0].Values); values != want {
				t.Fatalf("%d datapoints in the messages, want %d", values, want)
			}
			seen := 0
			for _, m := range b.out {
				if len(m.payload) > tc.maxSize {
					t.Errorf("message of %d bytes > maxSize %d", len(m.payload), tc.maxSize)
				}
				var v map[string][]struct {
					TS     int64              `json:"ts"`
					Values map[string]float64 `json:"values"`
				}
				if err := json.Unmarshal(m.payload, &v); err != nil {
					t.Fatalf("invalid JSON: %v\n%s", err, m.payload)
				}
				for _, entries := range v {
					seen += len(entries)
				}
			}
			if seen != 512 {
				t.Errorf("decoded %d entries, want 512", seen)
			}
		})
	}
}

// BenchmarkRecordEncode is SendToStorage's encoding of one frame's data into a
// storage record (no storage).
func BenchmarkRecordEncode(b *testing.B) {
	d := benchData("bench-0000", 17)
	var rec, scratch []byte
	b.ReportAllocs()
	for b.Loop() {
		var ok bool
		rec, scratch, ok = appendRecord(rec[:0], d, 1, scratch)
		if !ok {
			b.Fatal("no values")
		}
	}
	b.SetBytes(int64(len(rec)))
}

// BenchmarkRecordDecode is the publisher's decoding of one record.
func BenchmarkRecordDecode(b *testing.B) {
	rec := benchRecords(b, 1, 1)[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatcher merges one storage batch of 512 records into gateway API
// messages: one device (burst) or many (paced, fleet), at the TB sample's
// maxPayloadSizeBytes 8196 and at 64 KiB. ns/record is the publisher's CPU per frame
// before MQTT.
func BenchmarkBatcher(b *testing.B) {
	for _, tc := range []struct{ devices, maxSize int }{{1, 8196}, {1, 65536}, {100, 8196}, {100, 65536}, {1000, 8196}} {
		b.Run(fmt.Sprintf("devices=%d/max=%d", tc.devices, tc.maxSize), func(b *testing.B) {
			recs := benchRecords(b, 512, tc.devices)
			bt := newBatcher(tc.maxSize)
			var msgs, total int
			b.ReportAllocs()
			for b.Loop() {
				m, _, n := runBatch(bt, recs)
				msgs, total = m, n
			}
			b.SetBytes(int64(total))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
			b.ReportMetric(float64(msgs), "msgs/batch")
		})
	}
}
