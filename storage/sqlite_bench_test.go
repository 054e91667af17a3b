package storage

import (
	"context"
	"testing"
)

// BenchmarkSerialPutReadAck is the gateway's burst with one device: one
// goroutine puts one record per call and waits for it, as a serial port's read
// loop does, while a reader reads and acknowledges; b.N is records.
func BenchmarkSerialPutReadAck(b *testing.B) {
	for _, bc := range benchCases() {
		if bc.name == "memory/fsync=0" {
			continue
		}
		b.Run(bc.name, func(b *testing.B) {
			s := bc.open(b, b.TempDir(), bc.fsync, b.N)
			defer s.Close()
			rec := make([]byte, benchRecSize)
			copy(rec, "record")
			b.SetBytes(benchRecSize)
			b.ResetTimer()
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range b.N {
					if err := s.Put(context.Background(), rec); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			readAckAll(b, s, b.N)
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
