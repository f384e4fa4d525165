package wal

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// background runs one kind of background work of a Log (checkpoints,
// retention) on a goroutine of its own: on a ticker, and when kicked. Its
// errors are handled one way for all kinds: logged at Error, kept for the
// Log's XErr method, and passed to the kind's OnError callback, which may
// call Close (Close then does not wait for the goroutine it runs on).
type background struct {
	what string // for the log line: "checkpoint", "retention"

	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu  sync.Mutex
	err error // the last run's error, guarded by mu
	// inCallback is set while OnError runs, so that a Close it calls
	// does not wait for the goroutine it is running on.
	inCallback atomic.Bool
}

// start runs work every interval (if positive) and whenever kicked, until
// stopped. onError, if set, is called with every failed run's error.
func (b *background) start(l *Log, interval time.Duration, work func() error, onError func(error)) {
	b.kick = make(chan struct{}, 1)
	b.stop = make(chan struct{})
	b.done = make(chan struct{})
	go b.loop(l, interval, work, onError)
}

func (b *background) loop(l *Log, interval time.Duration, work func() error, onError func(error)) {
	defer close(b.done)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-b.stop:
			return
		case <-tick:
		case <-b.kick:
		}
		select {
		case <-b.stop: // a tick and the stop arrived together
			return
		default:
		}
		b.report(l, work(), onError)
	}
}

// report keeps a run's error and reports a failure; ErrClosed (the log
// closing under the run) is no failure.
func (b *background) report(l *Log, err error, onError func(error)) {
	if errors.Is(err, ErrClosed) {
		return
	}
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
	if err == nil {
		return
	}
	l.opts.Logger.Error("journal: background "+b.what+" failed", "dir", l.dir, "err", err)
	if onError != nil {
		b.inCallback.Store(true)
		defer b.inCallback.Store(false)
		onError(err)
	}
}

// poke asks for a run without waiting for it; a run already asked for
// covers this one.
func (b *background) poke() {
	if b.kick == nil {
		return
	}
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// lastErr is the last run's error, nil if it succeeded (or none ran).
func (b *background) lastErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// halt stops the loop and waits for it to end, unless called from the
// callback: the loop then ends when the callback returns, without touching
// the log again.
func (b *background) halt() {
	if b.stop == nil {
		return
	}
	b.stopOnce.Do(func() { close(b.stop) })
	if !b.inCallback.Load() {
		<-b.done
	}
}
