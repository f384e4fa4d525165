module github.com/gojournal/journal/powercut

go 1.25.0

require (
	github.com/gojournal/journal v0.0.0
	github.com/hanwen/go-fuse/v2 v2.12.1
	golang.org/x/sys v0.47.0
)

require (
	github.com/anishathalye/porcupine v1.3.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
)

replace github.com/gojournal/journal => ../
