// Package pool keeps MCP server processes started ahead of the sessions and 2026-07-28 users that will need them
// (--pool): a new session takes a process that already runs in place of waiting for one to start, which takes a
// Node server about 300 ms.
//
// A process waits uninitialized: the client's own initialize reaches it as it would reach a fresh one, so the
// server sees the client's real version and capabilities. It is warmed first: a Node server's first initialize runs
// code the runtime has not compiled yet (the SDK's schema of the initialize request is compiled on its first use),
// about 4 to 8 ms of a session's start. The warm-up is a ping, which MCP allows before initialize, then an
// initialize the server must refuse: its clientInfo is a number, not an object, so it names no client and a server
// that checks its request refuses it (the TypeScript and Go SDKs do), yet reads the request's version and
// capabilities against its schema first. A server that accepts it anyway has been initialized by nobody: that process is ended,
// never handed out, and the pool warms that command's processes with the ping alone from then on.
//
// The pool refills itself in the background, one process at a time and a moment after the last process was taken:
// never more than its size waiting, only while the proxy's limit on processes allows (those waiting count against
// it), each start after every start a user waits for (package starts), and backing off, up to a minute, while the
// command fails to start or its processes end by themselves.
//
// Only a command that is the same for every user can be started ahead: the proxy refuses a pool for one with
// per-user settings or credentials.
package pool

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/metrics"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/starts"
)

// Config says how many processes wait, how one is started and when there is room for one more.
type Config struct {
	Size int
	// Start starts one process, for nobody yet.
	Start func() (*session.Session, error)
	// Room reports whether the proxy's processes stay within its limit when the pool holds held processes
	// (waiting, or starting, the one about to start included).
	Room func(held int) bool
	// Backoff is the pause after a failure, doubled for each failure in a row up to MaxBackoff (defaults: 1 s and
	// 1 min).
	Backoff, MaxBackoff time.Duration
	// Settle is how long the refill waits after a process is taken (default 1 s): a process starting takes a core
	// for a few hundred milliseconds, and the sessions that just took theirs, or a burst of them still taking, come
	// first.
	Settle time.Duration
	// Starts bounds the processes starting at once (nil: no bound): a refill starts only when no start a user waits
	// for is waiting, and holds its turn until its process has answered its warm-up.
	Starts  *starts.Limiter
	Log     *slog.Logger
	Metrics *metrics.Metrics // nil: not counted
}

// warmTimeout bounds the warm-up ping: a server that does not answer pings before initialize still waits in the
// pool, unwarmed.
const warmTimeout = 10 * time.Second

// The warm-up's ids; both calls are over before any client can reach the process.
var (
	warmID     = json.RawMessage(`"streamproxy-pool-warmup"`)
	warmInitID = json.RawMessage(`"streamproxy-pool-warmup-initialize"`)
)

// warmInitialize is the initialize a server refuses (see the package comment): a version and capabilities as
// a client sends them, and a clientInfo of the wrong type.
var warmInitialize = []byte(`{"jsonrpc":"2.0","id":"streamproxy-pool-warmup-initialize","method":"initialize","params":` +
	`{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":0}}`)

// Pool holds processes started ahead. A nil *Pool holds none: Take finds nothing, the rest does nothing.
type Pool struct {
	cfg  Config
	log  *slog.Logger
	held atomic.Int64 // waiting plus starting, read by the proxy under its own lock
	// pingOnly is set once the command accepted the refused initialize: its processes are warmed by a ping alone.
	pingOnly atomic.Bool

	mu       sync.Mutex
	ready    []*session.Session // oldest first
	failures int                // in a row, since a process was last taken
	lastFail time.Time
	lastTake time.Time
	closed   bool

	kick    chan struct{}
	ctx     context.Context // canceled by Close: a start in progress gives up its warm-up
	cancel  context.CancelFunc
	stopped chan struct{}
}

// New starts filling a pool.
func New(cfg Config) *Pool {
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.Settle <= 0 {
		cfg.Settle = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{cfg: cfg, log: cfg.Log.With("pool", true), kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
		stopped: make(chan struct{})}
	p.cfg.Metrics.PoolReady(0)
	go p.run()
	p.Wake()
	return p
}

// Take returns a waiting process, or nil when none waits (a miss: see Missed). The process leaves the pool, which
// starts another.
func (p *Pool) Take() *session.Session {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, s := range p.ready {
		select {
		case <-s.Done():
			continue // it ended while waiting: its watcher removes it
		default:
		}
		p.ready = append(p.ready[:i:i], p.ready[i+1:]...)
		p.held.Add(-1)
		p.failures = 0
		p.lastTake = time.Now()
		p.cfg.Metrics.PoolReady(len(p.ready))
		p.Wake()
		return s
	}
	return nil
}

// Missed counts a new process that found the pool empty and started fresh.
func (p *Pool) Missed() {
	if p != nil {
		p.cfg.Metrics.PoolMiss()
		p.log.Debug("the pool was empty: starting a process on demand")
	}
}

// Held is how many processes the pool holds, waiting or starting: they count against the proxy's limit.
func (p *Pool) Held() int {
	if p == nil {
		return 0
	}
	return int(p.held.Load())
}

// Ready is how many processes wait.
func (p *Pool) Ready() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready)
}

// Wake tells the pool there may be room for another process (one ended, or was taken).
func (p *Pool) Wake() {
	if p == nil {
		return
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Close stops refilling and ends the waiting processes.
func (p *Pool) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	<-p.stopped
	p.mu.Lock()
	waiting := p.ready
	p.ready = nil
	p.held.Store(0) // the refill has stopped: nothing is starting
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range waiting {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close(closeGrace) }()
	}
	wg.Wait()
	p.cfg.Metrics.PoolReady(0)
}

// closeGrace is how long a waiting process has between SIGTERM and SIGKILL when the pool closes.
const closeGrace = 3 * time.Second

func (p *Pool) run() {
	defer close(p.stopped)
	var timer <-chan time.Time
	for {
		select {
		case <-p.kick:
		case <-timer:
		case <-p.ctx.Done():
			return
		}
		timer = nil
		if wait := p.fill(); wait > 0 {
			timer = time.After(wait)
		}
	}
}

// fill starts processes until the pool is full, there is no room, or a failure asks it to wait (how long it
// returns).
func (p *Pool) fill() time.Duration {
	for {
		p.mu.Lock()
		if p.closed || int(p.held.Load()) >= p.cfg.Size {
			p.mu.Unlock()
			return 0
		}
		if p.failures > 0 {
			if wait := time.Until(p.lastFail.Add(p.backoffLocked())); wait > 0 {
				p.mu.Unlock()
				return wait
			}
		}
		if wait := time.Until(p.lastTake.Add(p.cfg.Settle)); wait > 0 {
			p.mu.Unlock()
			return wait
		}
		p.mu.Unlock()
		// Its turn comes after every start a user waits for; the pool is not counted as holding it meanwhile, so
		// that a refill waiting for its turn takes no room from users under the proxy's limit.
		release, err := p.cfg.Starts.Wait(p.ctx, starts.Ahead)
		if err != nil {
			return 0 // closed
		}
		// Counted before asking for room, so that the proxy, counting under its own lock, never admits a process
		// into the place this one takes.
		held := int(p.held.Add(1))
		if !p.cfg.Room(held) {
			p.held.Add(-1)
			release()
			return 0 // a process that ends or is taken wakes the pool
		}
		s, err := p.start()
		release()
		p.mu.Lock()
		if err != nil || p.closed {
			p.held.Add(-1)
			if err != nil {
				p.failLocked()
				p.log.Warn("could not start a process ahead", "err", err, "failures", p.failures, "retry_in", p.backoffLocked())
			}
			p.mu.Unlock()
			if s != nil {
				s.Close(closeGrace) // here, not in the background: Close waits for this goroutine
			}
			continue
		}
		p.ready = append(p.ready, s)
		p.cfg.Metrics.PoolReady(len(p.ready))
		p.mu.Unlock()
		go p.watch(s)
	}
}

// start starts one process and warms it: a ping, then the initialize the server refuses.
func (p *Pool) start() (*session.Session, error) {
	s, err := p.cfg.Start()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(p.ctx, warmTimeout)
	defer cancel()
	ping, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": warmID, "method": "ping"})
	_, err = s.Do(ctx, warmID, nil, ping, func(*session.Message) {})
	if err == nil && !p.pingOnly.Load() {
		var answer *session.Message
		answer, err = s.Do(ctx, warmInitID, nil, warmInitialize, func(*session.Message) {})
		if err == nil && answer.Error == nil {
			// Initialized by nobody: no client may have it. The next start warms with the ping alone.
			p.pingOnly.Store(true)
			p.log.Warn("the MCP server accepted an initialize without a client; the pool warms its processes with a ping only")
			s.Close(closeGrace)
			return p.start()
		}
	}
	switch {
	case err == nil, errors.Is(err, context.DeadlineExceeded):
		return s, nil
	case errors.Is(err, session.ErrClosed):
		return s, errors.New("the MCP server exited right after it started")
	default:
		return s, err
	}
}

// watch removes a waiting process that ends by itself, which counts as a failure of the command.
func (p *Pool) watch(s *session.Session) {
	<-s.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, w := range p.ready {
		if w != s {
			continue
		}
		p.ready = append(p.ready[:i:i], p.ready[i+1:]...)
		p.held.Add(-1)
		p.cfg.Metrics.PoolReady(len(p.ready))
		if !p.closed {
			p.failLocked()
			p.log.Warn("a process waiting in the pool exited", "failures", p.failures, "retry_in", p.backoffLocked())
			p.Wake()
		}
		return
	}
}

func (p *Pool) failLocked() {
	p.failures++
	p.lastFail = time.Now()
}

// backoffLocked is the pause after the failures in a row so far.
func (p *Pool) backoffLocked() time.Duration {
	d := p.cfg.Backoff
	for i := 1; i < p.failures && d < p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.cfg.MaxBackoff)
}
