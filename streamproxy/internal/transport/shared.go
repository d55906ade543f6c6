package transport

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/starts"
)

// Shared processes (Config.Share, --share N): N processes of the MCP server serve every caller, on both paths, for
// servers that keep nothing between calls. Each is a worker, which the stateless path uses as it uses a user's: its
// requests go under keys of the worker's own, so callers' ids and progress tokens never meet at the child. Sessions on
// the session path are the proxy's own (shared_session.go): it answers their initialize, logging level and
// subscriptions itself, and passes everything else on the same way.
//
// A child that speaks only the session revisions (most stdio servers) is initialized once by the proxy, roots hidden,
// and serves sessions and 2026-07-28 requests (through the bridge) alike. A child that speaks 2026-07-28 too fixes its
// generation per connection (the Go SDK's serves everything as a session once initialized, and serves sessions as
// 2026-07-28 once it answered server/discover), so it gets two groups of N: initialized ones for the sessions, and
// ones that take 2026-07-28 requests as they are.
//
// What the child sends that belongs to no single caller is never guessed at: its requests and log messages reach a
// call only while one caller has calls in flight at it (session.Config.Shared), else the request is answered with an
// error and the log message dropped (both counted); list changes go to every caller, resource updates to the callers
// subscribed to the resource on that process.
//
// A request goes to the process with the fewest calls in flight, not round robin: a Node server works one call at a
// time between awaits, so a slow tool call on one process would hold back every call dealt to it behind the slow one.
// A process takes at most Config.ShareMaxCalls calls at once: a process behind on its calls would queue every new one
// without bound, each waiting for all before it, and its memory grows with the queue. A call beyond it waits in the
// proxy, first come first served, at most Config.ShareMaxWait, for one of them to end, then is refused (503 with
// Retry-After, counted): a stall of the process or the machine of a few hundred milliseconds leaves a burst of calls
// that the processes answer within tens of milliseconds once it ends, where a refusal costs each caller its retry.
// A process that exits is started again (with backoff); its calls in flight get an error, and sessions carry on on the
// new one, which is subscribed again to their resources: they never held state in the process.

var (
	errSharedDown = errors.New("no shared MCP server process is running")
	errSharedBusy = errors.New("every shared MCP server process has the most calls in flight allowed")
)

// sharedPool is the shared processes, one slot each, and the sessions on them.
type sharedPool struct {
	h    *Handler
	n    int
	next atomic.Uint32 // where the search for the least busy process starts, so that ties take turns
	stop chan struct{} // closed by close

	mu        sync.Mutex
	slots     []*slot       // initialized processes: sessions, and 2026-07-28 requests when stateless is empty
	stateless []*slot       // processes for 2026-07-28 requests, when the child speaks it
	ready     chan struct{} // closed, and replaced, whenever a slot gets a running process
	closing   bool
	sessions  map[string]*sharedSession
}

// slot holds one shared process, replaced when it restarts.
type slot struct {
	index     int
	stateless bool // takes 2026-07-28 requests as they are, and is never initialized
	mu        sync.Mutex
	wk        *worker // nil while (re)starting
}

func (sl *slot) current() *worker {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.wk == nil {
		return nil
	}
	select {
	case <-sl.wk.s.Done():
		return nil
	default:
		return sl.wk
	}
}

// startShared starts the pool's processes in the background; requests wait for the first to be ready.
func (h *Handler) startShared(n int) *sharedPool {
	p := &sharedPool{h: h, n: n, stop: make(chan struct{}), ready: make(chan struct{}), sessions: map[string]*sharedSession{}}
	go p.begin()
	if h.cfg.IdleTimeout > 0 {
		go p.reapIdle()
	}
	return p
}

// begin learns what the command speaks, then starts the slots it needs.
func (p *sharedPool) begin() {
	backoff := restartFirst
	for {
		err := p.learnSpeaks()
		if err == nil {
			break
		}
		p.h.log.Error("cannot start the MCP server to learn what it speaks", "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-p.stop:
			return
		}
		backoff = min(2*backoff, restartMost)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return
	}
	for i := range p.n {
		p.slots = append(p.slots, &slot{index: i})
		go p.run(p.slots[i])
		if p.h.childSpeaks.Load() == speaksStateless {
			p.stateless = append(p.stateless, &slot{index: p.n + i, stateless: true})
			go p.run(p.stateless[i])
		}
	}
}

// Backoff between restarts of a shared process that keeps exiting.
const (
	restartFirst = 100 * time.Millisecond
	restartMost  = 30 * time.Second
	restartCalm  = time.Minute // a process that ran this long starts again after the first backoff, not the last
)

// run keeps a slot's process running until the pool closes.
func (p *sharedPool) run(sl *slot) {
	backoff := restartFirst
	for {
		started := time.Now()
		wk, err := p.start(sl)
		if err == nil {
			sl.mu.Lock()
			sl.wk = wk
			sl.mu.Unlock()
			p.mu.Lock()
			close(p.ready)
			p.ready = make(chan struct{})
			p.mu.Unlock()
			select {
			case <-wk.s.Done():
			case <-p.stop:
				wk.s.Close(childGrace)
				return
			}
			sl.mu.Lock()
			sl.wk = nil
			sl.mu.Unlock()
		}
		select {
		case <-p.stop:
			return
		default:
		}
		if err != nil {
			p.h.log.Error("cannot start a shared MCP server process", "slot", sl.index, "err", err, "retry_in", backoff)
		} else {
			p.h.log.Warn("a shared MCP server process exited; starting it again", "slot", sl.index, "retry_in", backoff)
		}
		if time.Since(started) > restartCalm {
			backoff = restartFirst
		}
		select {
		case <-time.After(backoff):
		case <-p.stop:
			return
		}
		backoff = min(2*backoff, restartMost)
	}
}

// start starts one shared process: initialized, and subscribed to what the sessions on its slot subscribed to; or,
// for 2026-07-28 requests to a child that speaks it, as it is.
func (p *sharedPool) start(sl *slot) (*worker, error) {
	// Its turn among the processes starting (callers wait for it), held until it is initialized; the proxy's Close
	// ends the wait.
	release, err := p.h.starts.Wait(context.Background(), starts.ForUser)
	if err != nil {
		return nil, err
	}
	defer release()
	wk := &worker{listeners: map[*listener]struct{}{}, subs: map[string]int{}}
	if limit := p.h.cfg.ShareMaxCalls; limit > 0 {
		wk.room = semaphore.NewWeighted(int64(limit))
	}
	s, err := session.Start(session.Config{Command: p.h.cfg.Command, Log: p.h.log.With("shared", sl.index),
		Metrics: p.h.cfg.Metrics, Answer: noRoots, Shared: true, Unrouted: func(m *session.Message) { p.unrouted(sl, wk, m) }})
	if err != nil {
		return nil, err
	}
	wk.s = s
	if sl.stateless {
		return wk, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := wk.initialize(ctx, true); err != nil {
		s.Close(childGrace)
		return nil, err
	}
	wk.forSessions = wk.bridged
	wk.forSessions.Capabilities = withoutTasks(wk.forSessions.Capabilities)
	if wk.forSessions.has("logging") {
		// Every log message comes to the proxy, which filters them per session (logging/setLevel) or per request
		// (2026-07-28's _meta): a level set at the child would be every caller's.
		if _, rpcErr, err := wk.request(ctx, "logging/setLevel", map[string]string{"level": "debug"}); err != nil || rpcErr != nil {
			p.h.log.Warn("a shared MCP server process did not take logging/setLevel debug: callers may get fewer log messages", "slot", sl.index)
		}
	}
	wk.hold(ctx, p.subscribedOn(sl))
	return wk, nil
}

// learnSpeaks learns what the command speaks, from a process of its own that is then ended (a child that answered
// server/discover cannot be initialized for sessions any more).
func (p *sharedPool) learnSpeaks() error {
	release, err := p.h.starts.Wait(context.Background(), starts.ForUser)
	if err != nil {
		return err
	}
	defer release()
	wk := &worker{}
	s, err := session.Start(session.Config{Command: p.h.cfg.Command, Log: p.h.log.With("probe", true), Answer: noRoots,
		Unrouted: func(m *session.Message) {
			if m.ID != nil {
				wk.refuse(m.ID, -32603, "no client request is in flight to carry this request")
			}
		}})
	if err != nil {
		return err
	}
	defer s.Close(childGrace)
	wk.s = s
	stateless, err := wk.probe(context.Background())
	release() // answered, or failed: its end is no start
	if err != nil {
		return err
	}
	if stateless {
		p.h.childSpeaks.Store(speaksStateless)
	} else {
		p.h.childSpeaks.Store(speaksSessionsOnly)
	}
	return nil
}

// withoutTasks removes the tasks capability (2025-11-25) from a shared process's capabilities: a task outlives the
// request that started it, and tasks/list and tasks/result would show it to every caller of the process.
func withoutTasks(caps json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(caps, &m) != nil {
		return caps
	}
	if _, ok := m["tasks"]; !ok {
		return caps
	}
	delete(m, "tasks")
	out, err := json.Marshal(m)
	if err != nil {
		return caps
	}
	return out
}

// sharedAllows refuses, on shared processes, what would mix callers: tasks, and task-augmented requests; status is the
// HTTP status of the refusal on the caller's path.
func (h *Handler) sharedAllows(w http.ResponseWriter, status int, id json.RawMessage, method string, params map[string]json.RawMessage) bool {
	if _, task := params["task"]; task || strings.HasPrefix(method, "tasks/") {
		rpcError(w, status, id, codeMethodNotFound, "tasks are not served by shared MCP server processes (--share): a task outlives its request, and the process serves every user")
		return false
	}
	return true
}

// pick returns the running process with the fewest calls in flight, for a session (or, stateless, a 2026-07-28
// request), waiting for one while none runs.
func (p *sharedPool) pick(ctx context.Context, stateless bool) (*slot, *worker, error) {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		closing, ready, slots := p.closing, p.ready, p.slots
		if stateless && len(p.stateless) > 0 {
			slots = p.stateless
		}
		p.mu.Unlock()
		if closing {
			return nil, nil, errShuttingDown
		}
		if sl, wk := p.leastBusy(slots); wk != nil {
			return sl, wk, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-deadline.C:
			return nil, nil, errSharedDown
		}
	}
}

// enter counts a caller's call at a shared process (pick gave the least busy one) until release. When the process
// has --share-max-calls in flight, the call waits for room after the calls that were waiting before it, at most
// --share-max-wait, then is refused with errSharedBusy; ctx's end (the client left) ends the wait with ctx's error.
// A waiting call counts as in flight, so that pick sends the next ones to a process with room.
func (p *sharedPool) enter(ctx context.Context, wk *worker) (release func(), err error) {
	wk.calls.Add(1)
	if wk.room != nil && !wk.room.TryAcquire(1) {
		err := errSharedBusy
		if wait := p.h.cfg.ShareMaxWait; wait > 0 {
			wctx, cancel := context.WithTimeout(ctx, wait)
			err = wk.room.Acquire(wctx, 1)
			cancel()
			if err != nil && ctx.Err() == nil {
				err = errSharedBusy
			}
		}
		if err != nil {
			wk.calls.Add(-1)
			return nil, err
		}
	}
	return func() {
		if wk.room != nil {
			wk.room.Release(1)
		}
		wk.calls.Add(-1)
	}, nil
}

// leastBusy returns the running process with the fewest callers' calls in flight. Long-lived ones (listen streams,
// parked calls) are not counted: they hold no share of the process's time.
func (p *sharedPool) leastBusy(slots []*slot) (*slot, *worker) {
	start := int(p.next.Add(1))
	var best *worker
	var bestSlot *slot
	least := 0
	for i := range slots {
		sl := slots[(start+i)%len(slots)]
		wk := sl.current()
		if wk == nil {
			continue
		}
		if n := int(wk.calls.Load()); best == nil || n < least {
			best, bestSlot, least = wk, sl, n
		}
	}
	return bestSlot, best
}

// all is every slot.
func (p *sharedPool) all() []*slot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append(slices.Clip(p.slots), p.stateless...)
}

// running reports how many shared processes run now.
func (p *sharedPool) running() int {
	n := 0
	for _, sl := range p.all() {
		if sl.current() != nil {
			n++
		}
	}
	return n
}

// unrouted takes a shared process's message that belongs to no single caller's request.
func (p *sharedPool) unrouted(sl *slot, wk *worker, m *session.Message) {
	switch {
	case m.ID != nil:
		p.h.cfg.SharedMetrics.Unrouted("request")
		p.h.log.Warn("a shared MCP server process sent a request that cannot be tied to one caller's request; answered with an error",
			"slot", sl.index, "method", m.Method)
		wk.refuse(m.ID, -32603, "this MCP server process is shared by several callers: it may ask only while one caller's request is in flight")
	case m.Method == "notifications/message":
		p.h.cfg.SharedMetrics.Unrouted("log")
		p.h.log.Debug("dropped a shared MCP server process's log message that belongs to no single caller", "slot", sl.index)
	case strings.HasSuffix(m.Method, "/list_changed"):
		// Not users' data: every caller hears of it.
		if m.Method == "notifications/tools/list_changed" {
			wk.forgetTools()
		}
		for _, other := range p.all() {
			if w := other.current(); w != nil {
				w.broadcast(m)
			}
		}
		p.notify(m.Raw, func(*sharedSession) bool { return true })
	case m.Method == "notifications/resources/updated":
		wk.broadcast(m)
		var n struct {
			Params struct {
				URI string `json:"uri"`
			} `json:"params"`
		}
		if json.Unmarshal(m.Raw, &n) != nil {
			return
		}
		p.notify(m.Raw, func(ss *sharedSession) bool { return ss.subscribed(n.Params.URI, sl) })
	default:
		p.h.log.Debug("dropped a shared MCP server process's notification that belongs to no single caller", "slot", sl.index, "method", m.Method)
	}
}

// notify puts a notification on the standalone stream of each session it is for.
func (p *sharedPool) notify(raw []byte, forSession func(*sharedSession) bool) {
	p.mu.Lock()
	targets := make([]*sharedSession, 0, len(p.sessions))
	for _, ss := range p.sessions {
		if forSession(ss) {
			targets = append(targets, ss)
		}
	}
	p.mu.Unlock()
	for _, ss := range targets {
		ss.notify(raw)
	}
}

// subscribedOn lists the resources the sessions subscribed to on a slot, once per session.
func (p *sharedPool) subscribedOn(sl *slot) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var uris []string
	for _, ss := range p.sessions {
		uris = append(uris, ss.subscriptionsOn(sl)...)
	}
	return uris
}

// close ends the shared processes and sessions, and refuses new requests.
func (p *sharedPool) close() {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return
	}
	p.closing = true
	for _, ss := range p.sessions {
		ss.end()
	}
	p.sessions = map[string]*sharedSession{}
	p.mu.Unlock()
	close(p.stop)
	var wg sync.WaitGroup
	for _, sl := range p.all() {
		if wk := sl.current(); wk != nil {
			wg.Add(1)
			go func() { defer wg.Done(); wk.s.Close(childGrace) }()
		}
	}
	wg.Wait()
}

// SharedProcesses reports how many shared MCP server processes run (0 without --share).
func (h *Handler) SharedProcesses() int {
	if h.shared == nil {
		return 0
	}
	return h.shared.running()
}
