// Command quickstart shows journal's main job: concurrent writers append
// records durably (group-committed: one write and one fdatasync for every
// batch of waiting callers), then the log is reopened, recovered and read
// back.
//
//	go run ./examples/quickstart [-dir DIR] [-writers 8] [-records 4000]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/gojournal/journal/wal"
)

func main() {
	dir := flag.String("dir", "", "log directory (default: a new temporary directory, removed afterwards)")
	writers := flag.Int("writers", 8, "concurrent writers")
	records := flag.Int("records", 4000, "records to append in all")
	flag.Parse()
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "journal-quickstart-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	if err := run(*dir, *writers, *records); err != nil {
		log.Fatal(err)
	}
}

func run(dir string, writers, records int) error {
	l, err := wal.Open(dir, nil)
	if err != nil {
		return err
	}
	start := time.Now()
	acked, err := appendConcurrently(l, writers, records)
	elapsed := time.Since(start)
	st := l.Stats()
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("appended %d records from %d writers in %v: %.0f durable appends/s, %d fdatasyncs (%.1f records each)\n",
		len(acked), writers, elapsed.Round(time.Millisecond), float64(len(acked))/elapsed.Seconds(),
		st.Syncs, float64(st.Records)/float64(max(st.Syncs, 1)))

	l, err = wal.Open(dir, nil)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Printf("reopened %s: records [%d, %d], torn tail cut: %v\n", dir, l.FirstIndex(), l.LastIndex(), l.Recovered().Torn != nil)
	for index, want := range acked {
		got, err := l.Read(index)
		if err != nil {
			return err
		}
		if string(got) != want {
			return fmt.Errorf("record %d: got %q, want %q", index, got, want)
		}
	}
	fmt.Printf("verified all %d acknowledged records byte for byte\n", len(acked))
	return nil
}

// appendConcurrently appends records from several goroutines and returns
// what each acknowledged index holds.
func appendConcurrently(l *wal.Log, writers, records int) (map[uint64]string, error) {
	var mu sync.Mutex
	acked := make(map[uint64]string, records)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := w; seq < records; seq += writers {
				data := fmt.Sprintf("writer %d, record %d", w, seq)
				index, err := l.Append([]byte(data))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked[index] = data
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	return acked, <-errs
}
