module github.com/gojournal/journal/raftstore/etcd

go 1.26

replace github.com/gojournal/journal => ../..

require (
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/gojournal/journal v0.0.0-00010101000000-000000000000
	go.etcd.io/raft/v3 v3.7.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/klauspost/compress v1.20.4 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
