package walprom_test

import (
	"bufio"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/gojournal/journal/wal"
	"github.com/gojournal/journal/walprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Register a collector per log, labelled with the log's name, and serve
// the registry over HTTP. A real program would listen with
// http.ListenAndServe(":2112", mux); here httptest stands in and the
// example scrapes itself.
func Example() {
	dir, err := os.MkdirTemp("", "walprom-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := wal.Open(dir, &wal.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(walprom.NewCollector(l, &walprom.Options{
		Labels: prometheus.Labels{"log": "orders"},
	}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, rec := range []string{"created", "paid", "shipped"} {
		if _, err := l.Append([]byte(rec)); err != nil {
			log.Fatal(err)
		}
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range []string{"journal_appends_total{", "journal_fdatasyncs_total{", "journal_segments{", `journal_records_per_commit_bucket{log="orders",le="1"}`} {
			if strings.HasPrefix(line, name) {
				fmt.Println(line)
			}
		}
	}
	// Output:
	// journal_appends_total{log="orders"} 3
	// journal_fdatasyncs_total{log="orders"} 3
	// journal_records_per_commit_bucket{log="orders",le="1"} 3
	// journal_segments{log="orders"} 1
}
