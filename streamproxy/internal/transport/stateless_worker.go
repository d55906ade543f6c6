package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/broker"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

// A worker is the child that serves one user's 2026-07-28 requests. Those requests carry no session, so they find
// their process by the identity the gateway vouched for (the user header): one child per user, never shared, kept
// while the user is active (--idle-timeout), so that a stateful server keeps the user's state across requests and a
// multi round-trip request's retry reaches the child that asked for input.
//
// A child that speaks 2026-07-28 itself gets the requests as they are, under ids of the worker's own (two of the
// user's clients may both send id 1). A child that speaks only the session revisions (most stdio servers today) is
// initialized by the proxy, which then bridges: it answers server/discover and subscriptions/listen from what the
// child declared and turns the child's own requests into InputRequiredResults (stateless_bridge.go).
type worker struct {
	user    string
	ready   chan struct{} // closed once started (err says how)
	err     error
	s       *session.Session
	bridged *bridgedChild // nil: the child speaks 2026-07-28
	// forSessions is, on a shared process, what the child declared in the proxy's initialize: the sessions on it are
	// answered from it (shared_session.go).
	forSessions *bridgedChild
	calls       atomic.Int32        // on a shared process, the callers' calls in flight at it or waiting for room (sharedPool.enter)
	room        *semaphore.Weighted // on a shared process with --share-max-calls, the calls it may take at once
	seq         atomic.Uint64

	mu        sync.Mutex
	tools     map[string][]paramHeader // x-mcp-header annotations by tool name; nil until known
	listeners map[*listener]struct{}   // bridged subscriptions/listen streams
	subs      map[string]int           // bridged: resource URIs subscribed at the child, by listeners using them
}

// bridgedChild is what a child that speaks only the session revisions declared in its initialize result.
type bridgedChild struct {
	ProtocolVersion string          `json:"protocolVersion"`
	Capabilities    json.RawMessage `json:"capabilities"`
	ServerInfo      json.RawMessage `json:"serverInfo"`
	Instructions    string          `json:"instructions,omitempty"`
}

// has reports whether the bridged child declared a capability.
func (b *bridgedChild) has(kind string) bool {
	var caps map[string]json.RawMessage
	if json.Unmarshal(b.Capabilities, &caps) != nil {
		return false
	}
	_, ok := caps[kind]
	return ok
}

// can reports whether the bridged child declared capabilities.<kind>.<feature> (e.g. tools.listChanged).
func (b *bridgedChild) can(kind, feature string) bool {
	var caps map[string]map[string]json.RawMessage
	if json.Unmarshal(b.Capabilities, &caps) != nil {
		return false
	}
	return string(caps[kind][feature]) == "true"
}

// What the configured MCP server speaks, learned from the first worker's probe and kept: it is the same command.
const (
	speaksUnknown int32 = iota
	speaksStateless
	speaksSessionsOnly
)

// worker returns the user's worker, starting it on the user's first stateless request.
func (h *Handler) worker(ctx context.Context, user string) (*worker, error) {
	if h.shared != nil {
		_, wk, err := h.shared.pick(ctx, true)
		return wk, err
	}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return nil, errShuttingDown
	}
	wk := h.workers[user]
	if wk == nil {
		pooled, err := h.roomLocked(user, h.pool.Ready() > 0)
		if err != nil {
			h.mu.Unlock()
			return nil, err
		}
		wk = &worker{user: user, ready: make(chan struct{}), listeners: map[*listener]struct{}{}, subs: map[string]int{}}
		h.workers[user] = wk
		h.mu.Unlock()
		wk.err = h.startWorker(ctx, wk, pooled)
		if wk.err != nil {
			// Forgotten before the requests waiting for it hear, so that one that starts it again finds no trace.
			h.forgetWorker(wk)
			if wk.s != nil {
				go wk.s.Close(childGrace)
			}
		}
		close(wk.ready)
		return wk, wk.err
	}
	h.mu.Unlock()
	select {
	case <-wk.ready:
		if errors.Is(wk.err, errStarterLeft) && ctx.Err() == nil {
			return h.worker(ctx, user) // this request starts the worker in its place
		}
		return wk, wk.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// errStarterLeft is a worker's start given up: the request that was to start it went away while it waited for its
// turn, before anything was started.
var errStarterLeft = errors.New("the request that was starting the user's MCP server process went away")

// startWorker starts the worker's child, or gives it pooled, a process from the pool.
func (h *Handler) startWorker(ctx context.Context, wk *worker, pooled *session.Session) error {
	if pooled != nil {
		wk.s = pooled // ended with the worker if what follows fails
	}
	cmd, err := h.command(wk.user)
	if err != nil {
		return err
	}
	// Other requests of the user may wait for this worker: the first client's leaving does not cancel its start.
	creds, err := h.credentials(context.WithoutCancel(ctx), wk.user, &cmd)
	if err != nil {
		return err
	}
	if pooled == nil {
		// Its turn to start, which a client that leaves gives up: then nothing is started for it, and a request of
		// the user's that waits for this worker starts it instead.
		release, err := h.waitStart(ctx)
		if err != nil {
			creds.Close()
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %w", errStarterLeft, err)
			}
			return err
		}
		// Held until the child has answered the probe and, bridged, initialize, or failed.
		defer release()
		// Its turn came: now the user's session to recycle, if they are at their limit, is ended.
		h.mu.Lock()
		_, err = h.userRoomLocked(wk.user, true, true)
		h.mu.Unlock()
		if err != nil {
			creds.Close()
			return err
		}
	}
	s, err := h.launch(session.Config{Command: cmd, UserID: wk.user, Log: h.log.With("worker", true),
		Metrics: h.cfg.Metrics, Answer: h.answerer(), Unrouted: func(m *session.Message) { h.unrouted(wk, m) }}, pooled)
	if err != nil {
		creds.Close()
		return err
	}
	wk.s = s
	go func() {
		<-s.Done()
		h.forgetWorker(wk)
	}()
	watchCredentials(s, creds, func() {
		h.forgetWorker(wk)
		s.Close(childGrace)
	})
	// Starting a child may take a while (npx); the client that asked waits for it, but not forever.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	if h.childSpeaks.Load() != speaksSessionsOnly {
		stateless, err := wk.probe(ctx)
		if err != nil {
			return err
		}
		if stateless {
			h.childSpeaks.Store(speaksStateless)
			return nil
		}
		h.childSpeaks.Store(speaksSessionsOnly)
	}
	return wk.initialize(ctx, h.cfg.HideRoots)
}

// startTimeout bounds a child's start: the server/discover probe and, for a child that speaks only the session
// revisions, initialize.
const startTimeout = 60 * time.Second

// probeTimeout is how long a child has to answer server/discover before it counts as a server of the session revisions
// that stays silent on unknown methods (the stdio transport's backward-compatibility rule).
const probeTimeout = 10 * time.Second

// probe asks the child for server/discover; a DiscoverResult that lists a stateless revision means it speaks
// 2026-07-28.
func (wk *worker) probe(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	res, rpcErr, err := wk.request(ctx, "server/discover", map[string]any{"_meta": proxyMeta()})
	if errors.Is(err, context.DeadlineExceeded) {
		return false, nil
	}
	if err != nil || rpcErr != nil {
		return false, err
	}
	var d struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	if json.Unmarshal(res, &d) != nil {
		return false, nil
	}
	for _, v := range d.SupportedVersions {
		if isStatelessVersion(v) {
			return true, nil
		}
	}
	return false, nil
}

// bridgedCapabilities is what the proxy declares to a bridged child: every server-to-client request it can carry to
// a stateless client as an input request. Per request, a client that did not declare the capability gets a clear error
// in its place (stateless_bridge.go).
func bridgedCapabilities(hideRoots bool) map[string]any {
	caps := map[string]any{"elicitation": map[string]any{}, "sampling": map[string]any{}, "roots": map[string]any{}}
	if hideRoots {
		delete(caps, "roots")
	}
	return caps
}

func (wk *worker) initialize(ctx context.Context, hideRoots bool) error {
	res, rpcErr, err := wk.request(ctx, "initialize", map[string]any{
		"protocolVersion": sessionVersions[0],
		"capabilities":    bridgedCapabilities(hideRoots),
		"clientInfo":      map[string]string{"name": "streamproxy", "version": "1"},
	})
	if err != nil {
		return fmt.Errorf("initialize the MCP server: %w", err)
	}
	if rpcErr != nil {
		return fmt.Errorf("the MCP server refused initialize: %s", rpcErr.Message)
	}
	var l bridgedChild
	if err := json.Unmarshal(res, &l); err != nil {
		return fmt.Errorf("the MCP server's initialize result: %w", err)
	}
	wk.bridged = &l
	return wk.s.Send([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
}

// proxyMeta is the request metadata of the proxy's own requests to a child that speaks 2026-07-28.
func proxyMeta() map[string]any {
	return map[string]any{metaProtocolVersion: statelessVersions[0], metaClientCapabilities: map[string]any{},
		metaClientInfo: map[string]string{"name": "streamproxy", "version": "1"}}
}

// nextKey returns a request id of the worker's own, unique for the child's lifetime.
func (wk *worker) nextKey() json.RawMessage {
	return json.RawMessage(strconv.Quote("sp-" + strconv.FormatUint(wk.seq.Add(1), 10)))
}

// request sends a request of the proxy's own and returns its result or error. Anything the child asks meanwhile is
// refused: no client waits behind the proxy's own requests.
func (wk *worker) request(ctx context.Context, method string, params any) (json.RawMessage, *rpcErr, error) {
	key := wk.nextKey()
	raw, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": key, "method": method, "params": params})
	if err != nil {
		return nil, nil, err
	}
	m, err := wk.s.Do(ctx, key, nil, raw, func(m *session.Message) {
		if m.ID != nil {
			wk.refuse(m.ID, -32603, "no client request is in flight to carry this request")
		}
	})
	if err != nil {
		return nil, nil, err
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcErr         `json:"error"`
	}
	if err := json.Unmarshal(m.Raw, &resp); err != nil {
		return nil, nil, fmt.Errorf("%s: malformed response: %w", method, err)
	}
	return resp.Result, resp.Error, nil
}

// cancel forgets a call and tells the child to stop working on it (stdio's cancellation).
func (wk *worker) cancel(c *session.Call, key json.RawMessage, reason string) {
	c.End()
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "notifications/cancelled",
		"params": map[string]any{"requestId": key, "reason": reason}})
	_ = wk.s.Send(raw)
}

// refuse answers a request of the child's with an error.
func (wk *worker) refuse(id json.RawMessage, code int, message string) {
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": rpcErr{Code: code, Message: message}})
	_ = wk.s.Send(raw)
}

// toolHeaders returns a tool's x-mcp-header annotations, asking the child for its tools when the tool is unknown.
func (wk *worker) toolHeaders(ctx context.Context, name string) ([]paramHeader, bool) {
	wk.mu.Lock()
	b, ok := wk.tools[name]
	wk.mu.Unlock()
	if ok {
		return b, true
	}
	var cursor string
	for range 50 { // a bound on pages, against a server whose cursor never ends
		params := map[string]any{}
		if wk.bridged == nil {
			params["_meta"] = proxyMeta()
		}
		if cursor != "" {
			params["cursor"] = cursor
		}
		res, rpcErr, err := wk.request(ctx, "tools/list", params)
		if err != nil || rpcErr != nil {
			break
		}
		cursor = wk.learnTools(res)
		if cursor == "" {
			break
		}
	}
	wk.mu.Lock()
	defer wk.mu.Unlock()
	b, ok = wk.tools[name]
	return b, ok
}

// learnTools records the annotations of a tools/list result (the proxy's own or a client's passing through) and
// returns its next cursor.
func (wk *worker) learnTools(result json.RawMessage) string {
	var list struct {
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"inputSchema"`
		} `json:"tools"`
		NextCursor string `json:"nextCursor"`
	}
	if json.Unmarshal(result, &list) != nil {
		return ""
	}
	wk.mu.Lock()
	defer wk.mu.Unlock()
	if wk.tools == nil {
		wk.tools = map[string][]paramHeader{}
	}
	for _, t := range list.Tools {
		wk.tools[t.Name] = toolParamHeaders(t.InputSchema)
	}
	return list.NextCursor
}

// forgetTools drops what is known of the tools, after the child said they changed.
func (wk *worker) forgetTools() {
	wk.mu.Lock()
	wk.tools = nil
	wk.mu.Unlock()
}

// unrouted takes a worker's message that belongs to no request in flight.
func (h *Handler) unrouted(wk *worker, m *session.Message) {
	switch {
	case m.ID != nil:
		// A bridged child asking something (roots/list after initialized, say) with no client request to carry it.
		wk.refuse(m.ID, -32603, "no client request is in flight to carry this request")
	case m.Method == "notifications/tools/list_changed":
		wk.forgetTools()
		wk.broadcast(m)
	default:
		wk.broadcast(m)
	}
}

func (h *Handler) forgetWorker(wk *worker) {
	h.mu.Lock()
	if h.workers[wk.user] == wk {
		delete(h.workers, wk.user)
		h.pool.Wake() // room for one more
	}
	h.mu.Unlock()
}

// workerError answers a request whose worker could not be had.
func (h *Handler) workerError(w http.ResponseWriter, r *http.Request, id json.RawMessage, err error) {
	if r.Context().Err() != nil {
		return // the client went away while its server started
	}
	if !errors.Is(err, errShuttingDown) && !errors.Is(err, errTooMany) && !errors.Is(err, errUserLimit) && !errors.Is(err, broker.ErrBroker) &&
		!errors.Is(err, errSharedBusy) && !errors.Is(err, errStartWait) {
		h.log.ErrorContext(r.Context(), "cannot start MCP server", "err", err)
	}
	h.refuse(w, id, err)
}
