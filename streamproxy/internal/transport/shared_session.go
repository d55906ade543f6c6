package transport

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

// Sessions on shared processes (--share). A session is the proxy's alone: no process holds anything of it. The proxy
// answers its initialize from a shared process's initialize result, with the version this client asked for when the
// proxy serves it; it answers ping, logging/setLevel (the level is the session's: the proxy filters the log messages
// of its calls) and resources/subscribe (the process is subscribed once per resource, whoever asked); every other
// request goes, under a key of the proxy's, to the shared process with the fewest calls in flight. A request the
// process asks while one session's calls are alone in flight reaches that session under an id of the proxy's, and
// only that session's answer to that id goes back. DELETE ends the session, not a process.

// sharedSession is one session on the shared processes.
type sharedSession struct {
	id, user string
	caps     map[string]json.RawMessage // the client's capabilities, from its initialize
	done     chan struct{}              // closed when the session ends

	mu       sync.Mutex
	ended    bool
	level    string               // the minimum level of log messages it wants; "": every one
	subs     map[string]*slot     // resources it subscribed to, and on which process
	calls    map[string]*exchange // its requests in flight, by the client's id (nil while being sent)
	asks     map[string]sharedAsk // the processes' requests it was shown, by the proxy's id for them
	askSeq   uint64               // numbers the proxy's ids for the processes' requests
	stream   chan session.Event   // the open standalone stream, if any
	backlog  []session.Event      // recent standalone events, for Last-Event-ID
	seq      uint64               // numbers standalone events
	lastUsed time.Time
}

// sharedAsk is a shared process's request shown to a session: where the answer goes, under which id.
type sharedAsk struct {
	wk *worker
	id json.RawMessage
}

// postShared serves a POST of the session path on the shared processes.
func (h *Handler) postShared(w http.ResponseWriter, r *http.Request, msg incoming) {
	sid := r.Header.Get("Mcp-Session-Id")
	if msg.Method == "initialize" {
		if sid != "" {
			rpcError(w, http.StatusBadRequest, msg.ID, -32600, "initialize must be sent without Mcp-Session-Id")
			return
		}
		h.initializeShared(w, r, msg)
		return
	}
	if sid == "" {
		rpcError(w, http.StatusBadRequest, msg.ID, -32600, "missing Mcp-Session-Id: send initialize first")
		return
	}
	ss := h.shared.lookup(sid, h.userOf(r))
	if ss == nil {
		rpcError(w, http.StatusNotFound, msg.ID, -32001, "session not found: it ended or never existed; initialize a new one")
		return
	}
	ss.touch()
	switch {
	case msg.Method == "" && msg.ID != nil:
		h.answered(r, ss.id, msg, msg.Raw) // before the process hears it, as on a session's own process
		h.shared.answer(ss, msg)
		w.WriteHeader(http.StatusAccepted)
		return
	case msg.ID == nil:
		if msg.Method == "notifications/cancelled" {
			ss.cancel(msg.params)
		}
		// initialized was the proxy's to hear; roots never reach a shared process; the rest concerns no process.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if !h.authorize(w, r, msg.ID, msg.Method, msg.params) || !h.sharedAllows(w, http.StatusOK, msg.ID, msg.Method, msg.params) {
		return
	}
	switch msg.Method {
	case "ping":
		writeResult(w, msg.ID, map[string]any{})
		return
	case "logging/setLevel":
		var level string
		if json.Unmarshal(msg.params["level"], &level) != nil || !slices.Contains(logLevels, level) {
			rpcError(w, http.StatusOK, msg.ID, codeInvalidParams, "level must be one of "+`"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"`)
			return
		}
		ss.mu.Lock()
		ss.level = level
		ss.mu.Unlock()
		writeResult(w, msg.ID, map[string]any{})
		return
	case "resources/subscribe", "resources/unsubscribe":
		h.subscribeShared(w, r, ss, msg)
		return
	}
	h.callShared(w, r, ss, msg)
}

func (h *Handler) initializeShared(w http.ResponseWriter, r *http.Request, msg incoming) {
	if msg.ID == nil {
		rpcError(w, http.StatusBadRequest, nil, -32600, "initialize must be a request with an id")
		return
	}
	_, wk, err := h.shared.pick(r.Context(), false)
	if err != nil {
		h.workerError(w, r, msg.ID, err)
		return
	}
	var asked string
	_ = json.Unmarshal(msg.params["protocolVersion"], &asked)
	version := sessionVersions[0]
	if slices.Contains(sessionVersions, asked) {
		version = asked
	}
	var caps map[string]json.RawMessage
	_ = json.Unmarshal(msg.params["capabilities"], &caps)
	id, err := session.RandomID()
	if err != nil {
		h.refuse(w, msg.ID, err)
		return
	}
	ss := &sharedSession{id: id, user: h.userOf(r), caps: caps, done: make(chan struct{}), subs: map[string]*slot{},
		calls: map[string]*exchange{}, asks: map[string]sharedAsk{}, lastUsed: time.Now()}
	if err := h.shared.add(ss); err != nil {
		h.refuse(w, msg.ID, err)
		return
	}
	init := wk.forSessions
	res := map[string]any{"protocolVersion": version, "capabilities": init.Capabilities, "serverInfo": init.ServerInfo}
	if init.Instructions != "" {
		res["instructions"] = init.Instructions
	}
	w.Header().Set("Mcp-Session-Id", id)
	writeResult(w, msg.ID, res)
}

// callShared passes a session's request to a shared process and relays what comes back.
func (h *Handler) callShared(w http.ResponseWriter, r *http.Request, ss *sharedSession, msg incoming) {
	key := string(msg.ID)
	ss.mu.Lock()
	if _, dup := ss.calls[key]; dup {
		ss.mu.Unlock()
		rpcError(w, http.StatusBadRequest, msg.ID, -32600, "a request with this id is already in flight in this session")
		return
	}
	ss.calls[key] = nil
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		delete(ss.calls, key)
		ss.lastUsed = time.Now()
		ss.mu.Unlock()
	}()
	_, wk, err := h.shared.pick(r.Context(), false)
	if err != nil {
		h.workerError(w, r, msg.ID, err)
		return
	}
	release, err := h.shared.enter(r.Context(), wk)
	if err != nil {
		h.workerError(w, r, msg.ID, err)
		return
	}
	defer release()
	defer childSpan(r.Context()).End()
	q := &statelessRequest{ID: msg.ID, Method: msg.Method, RawParams: msg.Params, Params: msg.params, Meta: msg.meta}
	x, err := h.sendFor(w, r, wk, q, ss)
	if err != nil {
		return
	}
	ss.mu.Lock()
	ss.calls[key] = x
	ss.mu.Unlock()
	x.wait()
}

// subscribeShared answers resources/subscribe and resources/unsubscribe: the process is subscribed while any
// session (or 2026-07-28 listener) on it wants the resource.
func (h *Handler) subscribeShared(w http.ResponseWriter, r *http.Request, ss *sharedSession, msg incoming) {
	var uri string
	if json.Unmarshal(msg.params["uri"], &uri) != nil || uri == "" {
		rpcError(w, http.StatusOK, msg.ID, codeInvalidParams, "params.uri must name a resource")
		return
	}
	if msg.Method == "resources/unsubscribe" {
		ss.mu.Lock()
		sl := ss.subs[uri]
		delete(ss.subs, uri)
		ss.mu.Unlock()
		if sl != nil {
			if wk := sl.current(); wk != nil {
				wk.release([]string{uri})
			}
		}
		writeResult(w, msg.ID, map[string]any{})
		return
	}
	sl, wk, err := h.shared.pick(r.Context(), false)
	if err != nil {
		h.workerError(w, r, msg.ID, err)
		return
	}
	if !wk.forSessions.can("resources", "subscribe") {
		rpcError(w, http.StatusOK, msg.ID, codeMethodNotFound, "this MCP server offers no resource subscriptions")
		return
	}
	ss.mu.Lock()
	_, already := ss.subs[uri]
	if !already {
		ss.subs[uri] = sl
	}
	ss.mu.Unlock()
	if !already {
		wk.hold(r.Context(), []string{uri})
	}
	writeResult(w, msg.ID, map[string]any{})
}

// ask shows a session a shared process's request that came while only this session's calls were in flight: under
// an id of the proxy's, on the call's stream, when the client declared the capability it needs.
func (ss *sharedSession) ask(x *exchange, m *session.Message) {
	if m.Method == "ping" {
		raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{}})
		_ = x.wk.s.Send(raw)
		return
	}
	need, known := inputCapability[m.Method]
	if _, declared := ss.caps[need]; !known || !declared {
		x.wk.refuse(m.ID, codeMethodNotFound, "the client cannot answer "+m.Method)
		return
	}
	var msg map[string]json.RawMessage
	if json.Unmarshal(m.Raw, &msg) != nil {
		x.wk.refuse(m.ID, -32603, "malformed request")
		return
	}
	ss.mu.Lock()
	ss.askSeq++
	id := strconv.Quote("sp-ask-" + strconv.FormatUint(ss.askSeq, 10))
	ss.asks[id] = sharedAsk{wk: x.wk, id: m.ID}
	ss.mu.Unlock()
	msg["id"] = json.RawMessage(id)
	raw, err := json.Marshal(msg)
	if err != nil {
		return
	}
	if x.h.asked(x.r, ss.id, m.Method, json.RawMessage(id), raw) {
		x.asked = append(x.asked, id)
	}
	x.stream()
	x.sse.event("", raw)
}

// answer passes a client's answer to a request it was shown back to the process that asked, under the process's
// id; an answer to anything else is dropped.
func (p *sharedPool) answer(ss *sharedSession, msg incoming) {
	ss.mu.Lock()
	a, ok := ss.asks[string(msg.ID)]
	delete(ss.asks, string(msg.ID))
	ss.mu.Unlock()
	if !ok {
		p.h.log.Debug("dropped a client's answer to no request it was shown", "session", ss.id[:8])
		return
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(msg.Raw, &m) != nil {
		return
	}
	m["id"] = a.id
	if raw, err := json.Marshal(m); err == nil {
		_ = a.wk.s.Send(raw)
	}
}

// cancel tells the process that a call of this session's is cancelled; a caller names only its own calls.
func (ss *sharedSession) cancel(params map[string]json.RawMessage) {
	ss.mu.Lock()
	x := ss.calls[string(params["requestId"])]
	ss.mu.Unlock()
	if x == nil {
		return
	}
	var reason string
	_ = json.Unmarshal(params["reason"], &reason)
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "notifications/cancelled",
		"params": map[string]any{"requestId": x.key, "reason": reason}})
	_ = x.wk.s.Send(raw)
}

// wantsLog reports whether a log message of one of the session's calls is at its level or above.
func (ss *sharedSession) wantsLog(raw []byte) bool {
	ss.mu.Lock()
	want := ss.level
	ss.mu.Unlock()
	return want == "" || atLevel(raw, want)
}

func (ss *sharedSession) subscribed(uri string, sl *slot) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.subs[uri] == sl
}

func (ss *sharedSession) subscriptionsOn(sl *slot) []string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var uris []string
	for uri, on := range ss.subs {
		if on == sl {
			uris = append(uris, uri)
		}
	}
	return uris
}

func (ss *sharedSession) touch() {
	ss.mu.Lock()
	ss.lastUsed = time.Now()
	ss.mu.Unlock()
}

// notify puts a notification on the session's standalone stream, and in its backlog for resumption.
func (ss *sharedSession) notify(raw []byte) {
	ss.mu.Lock()
	ss.seq++
	e := session.Event{Seq: ss.seq, Raw: raw}
	if len(ss.backlog) == sharedBacklog {
		ss.backlog = append(ss.backlog[:0], ss.backlog[1:]...)
	}
	ss.backlog = append(ss.backlog, e)
	stream := ss.stream
	ss.mu.Unlock()
	if stream != nil {
		select {
		case stream <- e:
		default: // a stream that is not read can resume from the backlog
		}
	}
}

// sharedBacklog is how many standalone events a session on shared processes keeps for resumption: only list changes
// and resource updates come that way.
const sharedBacklog = 64

// end marks the session over; the caller releases its subscriptions.
func (ss *sharedSession) end() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.ended {
		ss.ended = true
		close(ss.done)
	}
}

// add opens a session within --max-sessions and --max-per-user.
func (p *sharedPool) add(ss *sharedSession) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return errShuttingDown
	}
	if max := p.h.cfg.MaxPerUser; max > 0 && ss.user != "" {
		n := 0
		for _, o := range p.sessions {
			if o.user == ss.user {
				n++
			}
		}
		if n >= max {
			return errUserSessions
		}
	}
	if max := p.h.cfg.MaxSessions; max > 0 && len(p.sessions) >= max {
		return errTooManySessions
	}
	p.sessions[ss.id] = ss
	return nil
}

// lookup finds a session of the user's; another user's is reported as missing, so ids cannot be probed.
func (p *sharedPool) lookup(id, user string) *sharedSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ss := p.sessions[id]; ss != nil && ss.user == user {
		return ss
	}
	return nil
}

// remove ends a session: it is gone for clients, and the processes drop the subscriptions nobody else holds.
func (p *sharedPool) remove(ss *sharedSession) {
	p.mu.Lock()
	if p.sessions[ss.id] == ss {
		delete(p.sessions, ss.id)
	}
	p.mu.Unlock()
	p.h.endRoundTrips(ss.id)
	ss.end()
	ss.mu.Lock()
	subs := ss.subs
	ss.subs = map[string]*slot{}
	ss.mu.Unlock()
	for uri, sl := range subs {
		if wk := sl.current(); wk != nil {
			wk.release([]string{uri})
		}
	}
}

func (p *sharedPool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sessions)
}

// reapIdle ends sessions without a call, a stream or a request for longer than --idle-timeout.
func (p *sharedPool) reapIdle() {
	t := time.NewTicker(min(p.h.cfg.IdleTimeout/2, 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		var idle []*sharedSession
		for _, ss := range p.sessions {
			ss.mu.Lock()
			if len(ss.calls) == 0 && ss.stream == nil && time.Since(ss.lastUsed) > p.h.cfg.IdleTimeout {
				idle = append(idle, ss)
			}
			ss.mu.Unlock()
		}
		p.mu.Unlock()
		for _, ss := range idle {
			p.h.log.Info("ending idle session", "session", ss.id[:8])
			p.h.cfg.Metrics.Expired()
			p.remove(ss)
		}
	}
}

// getShared serves a session's standalone stream: list changes and the updates of resources it subscribed to.
func (h *Handler) getShared(w http.ResponseWriter, r *http.Request) {
	ss := h.shared.lookup(r.Header.Get("Mcp-Session-Id"), h.userOf(r))
	if ss == nil {
		httpError(w, http.StatusNotFound, "session not found")
		return
	}
	release, err := h.admit(h.userOf(r), true)
	if err != nil {
		h.refuseLoad(w, nil, err)
		return
	}
	defer release()
	last, resume, ok := lastEventID(w, r)
	if !ok {
		return
	}
	ss.mu.Lock()
	if ss.stream != nil {
		ss.mu.Unlock()
		httpError(w, http.StatusConflict, "a stream is already open for this session")
		return
	}
	var replay []session.Event
	if resume {
		for _, e := range ss.backlog {
			if e.Seq > last {
				replay = append(replay, e)
			}
		}
	}
	events := make(chan session.Event, sharedBacklog)
	ss.stream = events
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		if ss.stream == events {
			ss.stream = nil
		}
		ss.lastUsed = time.Now()
		ss.mu.Unlock()
	}()
	h.streamEvents(w, r, ss.id, replay, events, ss.done)
}

// deleteShared ends a session on the shared processes; the processes go on.
func (h *Handler) deleteShared(w http.ResponseWriter, r *http.Request) {
	ss := h.shared.lookup(r.Header.Get("Mcp-Session-Id"), h.userOf(r))
	if ss == nil {
		httpError(w, http.StatusNotFound, "session not found")
		return
	}
	h.shared.remove(ss)
	w.WriteHeader(http.StatusNoContent)
}
