// Command metrics serves a journal log's metrics for Prometheus: it opens
// a log, appends a record every -every from a few goroutines (so group
// commits batch), and exposes /metrics on -addr.
//
//	go run ./examples/metrics -dir /tmp/metrics-demo -addr :2112
//	curl -s localhost:2112/metrics | grep '^journal_'
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/gojournal/journal/wal"
	"github.com/gojournal/journal/walprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	dir := flag.String("dir", "metrics-demo", "the log directory (created if missing)")
	addr := flag.String("addr", "localhost:2112", "where to serve /metrics")
	every := flag.Duration("every", 10*time.Millisecond, "pause between two appends of each writer")
	flag.Parse()

	l, err := wal.Open(*dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		walprom.NewCollector(l, &walprom.Options{Labels: prometheus.Labels{"log": "demo"}}),
		collectors.NewGoCollector(),
	)
	for w := range 4 {
		go write(l, w, *every)
	}
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Printf("serving http://%s/metrics", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}

// write appends a small JSON record every pause until the log fails.
func write(l *wal.Log, writer int, pause time.Duration) {
	for i := 0; ; i++ {
		rec := fmt.Appendf(nil, `{"writer":%d,"seq":%d,"at":%q}`, writer, i, time.Now().Format(time.RFC3339Nano))
		if _, err := l.Append(rec); err != nil {
			log.Printf("append: %v", err)
			return
		}
		time.Sleep(pause)
	}
}
