package wal

import (
	"math/rand/v2"
	"testing"
	"time"
)

// readBenchRecords is the number of records of BenchmarkRead's log: 128 MiB
// of 128-byte records in batches of 64, over two segments and the active
// one, all in the page cache.
const readBenchRecords = 1 << 20

// BenchmarkRead measures random Read(i) of 128-byte records from the page
// cache on one goroutine, over sealed segments and the active one, and
// reports reads per second.
func BenchmarkRead(b *testing.B) {
	l, err := Open(b.TempDir(), &Options{NoSync: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	fillBatches(b, l, readBenchRecords, 128, 64)
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for b.Loop() {
		i := 1 + rng.Uint64N(readBenchRecords)
		rec, err := l.Read(i)
		if err != nil || len(rec) != 128 {
			b.Fatalf("Read(%d): %d bytes, %v", i, len(rec), err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
	// On a machine shared with other work, wall time depends on how
	// often this process got a core: CPU time per read (user and system,
	// this process) tells the code's cost apart from the machine's load.
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu).Seconds(), "reads/cpu-s")
}

// BenchmarkReplay measures sequential replay with a Reader of 4 KiB
// records (written in batches of 16, as under load) from the page cache,
// start to end, and reports bytes of records per second.
func BenchmarkReplay(b *testing.B) {
	const size, n = 4 << 10, 64 << 10 // 256 MiB of records
	l, err := Open(b.TempDir(), &Options{NoSync: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	fillBatches(b, l, n, size, 16)
	// Readers return durable records only: with NoSync, the records
	// still in the active segment become durable at Sync.
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size * n)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		r := l.NewReader(1)
		got := 0
		for r.Next() {
			got++
		}
		if r.Err() != nil || got != n {
			b.Fatalf("replay read %d records: %v", got, r.Err())
		}
		r.Close()
	}
	b.ReportMetric(float64(b.N*size*n)/1e6/(cpuTime()-cpu).Seconds(), "MB/cpu-s")
}

// fillBatches appends n records of size bytes in batches of batch.
func fillBatches(b *testing.B, l *Log, n, size, batch int) {
	b.Helper()
	recs := make([][]byte, batch)
	for i := range recs {
		recs[i] = make([]byte, size)
		for j := range recs[i] {
			recs[i][j] = byte(i + j)
		}
	}
	for done := 0; done < n; done += batch {
		if _, err := l.AppendBatch(recs[:min(batch, n-done)]); err != nil {
			b.Fatal(err)
		}
	}
}
