package wal_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"sync"

	"github.com/gojournal/journal/wal"
)

func Example() {
	dir, _ := os.MkdirTemp("", "journal-example-")
	defer os.RemoveAll(dir)

	l, err := wal.Open(dir, nil) // creates the directory and locks it
	if err != nil {
		log.Fatal(err)
	}
	index, err := l.Append([]byte("hello")) // durable when it returns
	if err != nil {
		log.Fatal(err)
	}
	data, err := l.Read(index)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("record %d: %s\n", index, data)
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: record 1: hello
}

func ExampleLog_AppendBatch() {
	dir, _ := os.MkdirTemp("", "journal-example-")
	defer os.RemoveAll(dir)
	l, err := wal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	// All three survive a crash together, or none does.
	first, err := l.AppendBatch([][]byte{[]byte("debit"), []byte("credit"), []byte("commit")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(first, l.LastIndex())
	// Output: 1 3
}

func ExampleLog_AppendApply() {
	dir, _ := os.MkdirTemp("", "journal-example-")
	defer os.RemoveAll(dir)
	l, err := wal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	// A state machine: a running total. Writers do not hold its lock
	// across the fdatasync, so their appends share group commits; the
	// applies still run one at a time in index order, each once its record
	// is durable, so the total always equals a replay of the log.
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for n := 1; n <= 4; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.AppendApply([]byte(strconv.Itoa(n)), func(index uint64) {
				mu.Lock()
				defer mu.Unlock()
				total += n
			})
			if err != nil {
				log.Print(err)
			}
		}()
	}
	wg.Wait()
	fmt.Println(total, l.LastIndex())
	// Output: 10 4
}

func ExampleLog_TruncateFront() {
	dir, _ := os.MkdirTemp("", "journal-example-")
	defer os.RemoveAll(dir)
	l, err := wal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	for _, s := range []string{"a", "b", "c", "d"} {
		if _, err := l.Append([]byte(s)); err != nil {
			log.Fatal(err)
		}
	}
	// Records 1 and 2 are no longer needed (say, a snapshot covers them).
	if err := l.TruncateFront(3); err != nil {
		log.Fatal(err)
	}
	// Record 4 was appended by mistake.
	if err := l.TruncateBack(3); err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.FirstIndex(), l.LastIndex())
	// Output: 3 3
}

func ExampleOpen_recovered() {
	dir, _ := os.MkdirTemp("", "journal-example-")
	defer os.RemoveAll(dir)
	l, err := wal.Open(dir, &wal.Options{SegmentSize: 1 << 20, Compression: wal.S2})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	// After a crash, Open cuts a torn tail and says so.
	if torn := l.Recovered().Torn; torn != nil {
		fmt.Printf("cut %d bytes at %s:%d\n", torn.Bytes, torn.Path, torn.Offset)
	}
	fmt.Println("log holds", l.LastIndex()-l.FirstIndex()+1, "records")
	// Output: log holds 0 records
}

func ExampleLog_Checkpoint() {
	dir, _ := os.MkdirTemp("", "journal-example-")
	defer os.RemoveAll(dir)
	l, err := wal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	total := 0
	for _, n := range []int{3, 4, 5} {
		if _, err := l.Append([]byte{byte(n)}); err != nil {
			log.Fatal(err)
		}
		total += n
	}
	// The state after record 3 is durable on its own: records 1-3 go.
	err = l.Checkpoint(3, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "total=%d", total)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	index, r, err := l.Snapshot()
	if err != nil {
		log.Fatal(err)
	}
	state, err := io.ReadAll(r) // read to the end: the checksum is checked there
	r.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("snapshot as of %d: %s; log holds [%d, %d]\n", index, state, l.FirstIndex(), l.LastIndex())
	// Output: snapshot as of 3: total=12; log holds [4, 3]
}

func ExampleLog_NewReader() {
	dir, _ := os.MkdirTemp("", "journal-example-")
	defer os.RemoveAll(dir)
	l, err := wal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	for _, s := range []string{"put a=1", "put b=2", "del a"} {
		if _, err := l.Append([]byte(s)); err != nil {
			log.Fatal(err)
		}
	}
	r := l.NewReader(2) // replay from record 2 on
	defer r.Close()
	for r.Next() {
		fmt.Printf("%d: %s\n", r.Index(), r.Record())
	}
	if err := r.Err(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 2: put b=2
	// 3: del a
}

func ExampleLog_Metrics() {
	dir, _ := os.MkdirTemp("", "journal-example-")
	defer os.RemoveAll(dir)
	l, err := wal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	// Eight writers append at once: their records share group commits.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				if _, err := l.Append([]byte(strconv.Itoa(w*10 + i))); err != nil {
					log.Print(err)
				}
			}
		})
	}
	wg.Wait()
	m := l.Metrics()
	fmt.Println("records:", m.Records)
	fmt.Println("every commit in the histogram:", m.RecordsPerWrite.Count() == m.Writes, m.RecordsPerWrite.Sum == m.Records)
	fmt.Println("an fdatasync per commit:", m.Syncs == m.Writes, m.SyncMicros.Count() == m.Syncs)
	fmt.Println("segments:", m.Segments)
	// Output:
	// records: 80
	// every commit in the histogram: true true
	// an fdatasync per commit: true true
	// segments: 1
}
