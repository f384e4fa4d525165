package wal_test

import (
	"fmt"
	"log"
	"os"

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
