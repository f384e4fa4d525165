package cursor_test

import (
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/gojournal/journal/cursor"
	"github.com/gojournal/journal/wal"
)

// A consumer reads a log from the record after its position, acknowledges
// each event once handled, stops, and resumes where it left off.
func Example() {
	dir, _ := os.MkdirTemp("", "cursor-example-")
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)
	l, err := wal.Open(dir, &wal.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	for _, ev := range []string{"order 1", "order 2", "order 3"} {
		if _, err := l.Append([]byte(ev)); err != nil {
			log.Fatal(err)
		}
	}

	// consume handles at most limit events (all with a negative limit)
	// and returns, as a consumer process that stops would.
	consume := func(limit int) {
		store, err := cursor.Open(cursor.Dir(dir), &cursor.Options{Log: wal.Options{Logger: quiet}})
		if err != nil {
			log.Fatal(err)
		}
		defer store.Close()
		pos, _ := store.Position("billing") // 0 for a new consumer
		r := l.NewReader(pos + 1)
		defer r.Close()
		for i, ev := range r.All() {
			if limit == 0 {
				break
			}
			limit--
			fmt.Printf("billing handles %d: %s\n", i, ev)
			if err := store.Ack("billing", i); err != nil { // durable when it returns
				log.Fatal(err)
			}
		}
		if err := r.Err(); err != nil {
			log.Fatal(err)
		}
	}
	consume(2)
	fmt.Println("stopped; restarting")
	consume(-1)
	// Output:
	// billing handles 1: order 1
	// billing handles 2: order 2
	// stopped; restarting
	// billing handles 3: order 3
}
