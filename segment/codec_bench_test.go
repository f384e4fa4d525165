package segment

import (
	"fmt"
	"testing"
)

// jsonRecord is a JSON-like application event of about 600 bytes: the
// kind of record a compressed log holds.
var jsonRecord = []byte(`{"ts":"2026-11-30T21:51:22.123456Z","level":"info","service":"checkout",` +
	`"host":"web-7f9c4b-x2k8p","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","user_id":183742,` +
	`"event":"order.placed","order":{"id":"ord_8c1e2f","currency":"EUR","total":129.97,"items":[` +
	`{"sku":"SKU-10492","name":"USB-C cable 2 m","qty":2,"price":9.99},` +
	`{"sku":"SKU-22871","name":"Mechanical keyboard","qty":1,"price":109.99}]},` +
	`"http":{"method":"POST","path":"/api/v1/orders","status":201,"duration_ms":48.213,` +
	`"user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"},"tags":["web","eu-west-1"],` +
	`"msg":"order accepted and queued for fulfilment"}`)

// BenchmarkCompressParallel compresses one JSON-like record from 8
// goroutines per P, as appenders do: each Append compresses its record
// outside the log's lock, so the codec must not serialise them. Decompress
// is measured the same way, as concurrent readers use it.
func BenchmarkCompressParallel(b *testing.B) {
	for _, c := range []Codec{S2, Zstd} {
		b.Run(fmt.Sprintf("codec=%v/op=compress", c), func(b *testing.B) {
			b.SetBytes(int64(len(jsonRecord)))
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 0, 2*len(jsonRecord))
				for pb.Next() {
					buf = Compress(c, buf[:0], jsonRecord)
				}
			})
		})
		b.Run(fmt.Sprintf("codec=%v/op=decompress", c), func(b *testing.B) {
			stored := Compress(c, nil, jsonRecord)
			b.SetBytes(int64(len(jsonRecord)))
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := Decompress(c, stored); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
