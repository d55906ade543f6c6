// Package starts bounds how many MCP server processes start at once (--max-starting).
//
// Starting a Node server is a few hundred milliseconds of a core spent loading and compiling its code. Starts beyond
// the cores only share them: each takes longer and none finishes sooner. When many users come at once (a replica
// restarted under its users), every start slows down together until clients' initialize times out, and each retry
// adds one more start: on a 2-core machine one took 11 s and the clients did not get through within a minute.
//
// A start holds a turn from its spawn until the process first answers (or fails). A start that finds every turn
// taken waits in line, first come first served, and leaves the line when its caller gives up (its client went
// away, or it waited too long): nothing is started for a caller that is gone. Starts that nobody waits for yet (the
// pool's refills) come after every start a user waits for.
package starts

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/metrics"
)

// ErrClosed is returned to starts waiting, and to later ones, once the limiter is closed.
var ErrClosed = errors.New("no more MCP server processes are started: the proxy is shutting down")

// Priority says who waits for a start.
type Priority int

const (
	// ForUser is a start a user waits for: a session's, a 2026-07-28 worker's, a shared process's.
	ForUser Priority = iota
	// Ahead is a start for nobody yet (the pool's refill): it waits until no start for a user does.
	Ahead
)

// Limiter hands out the turns. A nil *Limiter bounds nothing.
type Limiter struct {
	limit   int // 0: no bound, starts are only counted
	metrics *metrics.Metrics

	mu      sync.Mutex
	running int
	lines   [2][]*waiter // by Priority, oldest first
	closed  bool
}

type waiter struct {
	turn    chan struct{} // closed when a turn is the waiter's
	granted bool
}

// New returns a limiter of limit starts at once; 0 or less counts starts without bounding them.
func New(limit int, m *metrics.Metrics) *Limiter {
	m.Starting(0)
	m.StartsWaiting(0)
	return &Limiter{limit: max(limit, 0), metrics: m}
}

// Wait takes a turn for one start, waiting in line while every turn is taken, until ctx ends (its cause is the
// error) or the limiter closes (ErrClosed). release gives the turn back once the process has answered or failed;
// calling it again does nothing.
func (l *Limiter) Wait(ctx context.Context, p Priority) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if l.limit == 0 || l.running < l.limit {
		// A free turn means nobody waits: turns go to waiters as they are given back.
		l.running++
		l.countLocked()
		l.mu.Unlock()
		return l.releaser(), nil
	}
	w := &waiter{turn: make(chan struct{})}
	l.lines[p] = append(l.lines[p], w)
	l.countLocked()
	l.mu.Unlock()

	select {
	case <-w.turn:
		if w.granted {
			return l.releaser(), nil
		}
		return nil, ErrClosed
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.granted {
		// Its turn came as its caller gave up: the turn goes to the next in line.
		l.handOnLocked()
	} else {
		l.lines[p] = slices.DeleteFunc(l.lines[p], func(o *waiter) bool { return o == w })
	}
	l.countLocked()
	return nil, context.Cause(ctx)
}

// releaser returns the function that gives one turn back, once.
func (l *Limiter) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.handOnLocked()
			l.countLocked()
		})
	}
}

// handOnLocked takes a turn back and gives it to the oldest waiter of the first line that has one.
func (l *Limiter) handOnLocked() {
	l.running--
	for p := range l.lines {
		if len(l.lines[p]) == 0 {
			continue
		}
		w := l.lines[p][0]
		l.lines[p] = l.lines[p][1:]
		w.granted = true
		l.running++
		close(w.turn)
		return
	}
}

func (l *Limiter) countLocked() {
	l.metrics.Starting(l.running)
	l.metrics.StartsWaiting(len(l.lines[ForUser]) + len(l.lines[Ahead]))
}

// Close turns away every start waiting and every later one; turns already taken are given back as before.
func (l *Limiter) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for p := range l.lines {
		for _, w := range l.lines[p] {
			close(w.turn)
		}
		l.lines[p] = nil
	}
	l.countLocked()
}
