package bench

import "sync"

// naive writes and fdatasyncs each record while holding a mutex: one
// caller at a time, no batching. It is what a log without group commit
// costs.
type naive struct {
	mu sync.Mutex
	f  *rawFile
}

func openNaive(dir string) (Appender, error) {
	f, err := createRaw(dir)
	if err != nil {
		return nil, err
	}
	return &naive{f: f}, nil
}

func (n *naive) Append(rec []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.f.write(rec); err != nil {
		return err
	}
	return n.f.sync()
}

func (n *naive) Syncs() (uint64, bool) { return n.f.syncs.Load(), true }
func (n *naive) Close() error          { return n.f.Close() }

// ideal is a hand-written group commit with nothing else in it: appenders
// queue their records; one goroutine takes everything queued, writes it
// with one pwrite, fdatasyncs once and wakes the appenders. No framing, no
// checksums, no index: the most a group commit can give on this disk.
type ideal struct {
	mu      sync.Mutex
	wake    *sync.Cond // signalled when a record is queued or on close
	buf     []byte     // the records queued for the next commit
	waiters []chan error
	closed  bool
	done    chan struct{}
	f       *rawFile
}

func openIdeal(dir string) (Appender, error) {
	f, err := createRaw(dir)
	if err != nil {
		return nil, err
	}
	g := &ideal{f: f, done: make(chan struct{})}
	g.wake = sync.NewCond(&g.mu)
	go g.commitLoop()
	return g, nil
}

// chans recycles the one-shot channels appenders wait on, so the
// baseline does not pay an allocation per append.
var chans = sync.Pool{New: func() any { return make(chan error, 1) }}

func (g *ideal) Append(rec []byte) error {
	ch := chans.Get().(chan error)
	g.mu.Lock()
	g.buf = append(g.buf, rec...)
	g.waiters = append(g.waiters, ch)
	g.wake.Signal()
	g.mu.Unlock()
	err := <-ch
	chans.Put(ch)
	return err
}

// commitLoop swaps the queue out under the lock and commits it outside,
// so appenders queue the next batch while this one syncs.
func (g *ideal) commitLoop() {
	defer close(g.done)
	var buf []byte
	var waiters []chan error
	for {
		g.mu.Lock()
		for len(g.waiters) == 0 && !g.closed {
			g.wake.Wait()
		}
		if len(g.waiters) == 0 {
			g.mu.Unlock()
			return
		}
		buf, g.buf = g.buf, buf[:0]
		waiters, g.waiters = g.waiters, waiters[:0]
		g.mu.Unlock()
		err := g.f.write(buf)
		if err == nil {
			err = g.f.sync()
		}
		for _, ch := range waiters {
			ch <- err
		}
	}
}

func (g *ideal) Syncs() (uint64, bool) { return g.f.syncs.Load(), true }

func (g *ideal) Close() error {
	g.mu.Lock()
	g.closed = true
	g.wake.Signal()
	g.mu.Unlock()
	<-g.done
	return g.f.Close()
}
