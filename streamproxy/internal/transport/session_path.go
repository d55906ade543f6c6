package transport

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

// sessionVersions are the session revisions, served on the session path; statelessVersions are the others.
var sessionVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// postSession serves a POST of the session path: initialize opens a session; anything else names one.
func (h *Handler) postSession(w http.ResponseWriter, r *http.Request, msg incoming) {
	if h.shared != nil {
		h.postShared(w, r, msg)
		return
	}
	body := msg.Raw // the proxy's own encoding of what it read, never the client's bytes
	sid := r.Header.Get("Mcp-Session-Id")
	if msg.Method == "initialize" {
		if sid != "" {
			rpcError(w, http.StatusBadRequest, msg.ID, -32600, "initialize must be sent without Mcp-Session-Id")
			return
		}
		if h.cfg.HideRoots {
			body = hideRootsInInitialize(body)
		}
		h.initialize(w, r, body, msg)
		return
	}
	if sid == "" {
		rpcError(w, http.StatusBadRequest, msg.ID, -32600, "missing Mcp-Session-Id: send initialize first")
		return
	}
	s := h.lookup(sid, r)
	if s == nil {
		rpcError(w, http.StatusNotFound, msg.ID, -32001, "session not found: it ended or never existed; initialize a new one")
		return
	}
	s.Touch()
	if msg.Method == "" || msg.ID == nil {
		// A notification, or the client's response to a server request: nothing comes back.
		if h.cfg.HideRoots && aboutRoots(msg, body) {
			h.log.InfoContext(r.Context(), "kept a client's message about roots from the MCP server (--hide-client-roots)",
				"session", s.ID[:8], "method", msg.Method)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		// Recorded before the server hears it: once it has, the operation that asked may end, and would record
		// its round trip as unanswered.
		h.answered(r, s.ID, msg, body)
		if err := s.Send(body); err != nil {
			rpcError(w, http.StatusNotFound, nil, -32001, "session ended")
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if !h.authorize(w, r, msg.ID, msg.Method, msg.params) {
		return
	}
	h.call(w, r, s, body, msg, "")
}

func (h *Handler) initialize(w http.ResponseWriter, r *http.Request, body []byte, msg incoming) {
	if msg.ID == nil {
		rpcError(w, http.StatusBadRequest, nil, -32600, "initialize must be a request with an id")
		return
	}
	user := h.userOf(r)
	cmd, err := h.command(user)
	if err != nil {
		h.refuse(w, msg.ID, err)
		return
	}
	// Before the lock: the broker is asked over the network.
	creds, err := h.credentials(r.Context(), user, &cmd)
	if cr, ok := asConnectRequired(err); ok {
		h.connectRequired(r, cr)
		connectSession(w, msg, cr)
		return
	}
	if err != nil {
		h.refuse(w, msg.ID, err)
		return
	}
	h.mu.Lock()
	pooled, release, err := h.reserveLocked(r.Context(), user)
	// The turn to start is held until the process has answered the client's initialize, or failed.
	defer release()
	if err != nil {
		h.mu.Unlock()
		creds.Close()
		if r.Context().Err() != nil {
			return // the client went away while it waited for its turn: nothing was started
		}
		h.refuse(w, msg.ID, err)
		return
	}
	s, err := h.launch(session.Config{Command: cmd, UserID: user, Backlog: h.cfg.Backlog,
		Answer: h.answerer(), Log: h.log, Metrics: h.cfg.Metrics}, pooled)
	if err != nil {
		h.mu.Unlock()
		creds.Close()
		h.log.ErrorContext(r.Context(), "cannot start MCP server", "err", err)
		h.refuse(w, msg.ID, err)
		return
	}
	h.sessions[s.ID] = s
	h.mu.Unlock()
	go func() {
		<-s.Done()
		h.forget(s)
	}()
	watchCredentials(s, creds, func() { h.remove(s) })
	h.call(w, r, s, body, msg, s.ID)
}

// call sends a request and answers with its response: plain JSON when the server answers at once, an SSE stream when
// it sends related messages (progress, logging, sampling, elicitation) first.
func (h *Handler) call(w http.ResponseWriter, r *http.Request, s *session.Session, body []byte, msg incoming, newSession string) {
	ctx := r.Context()
	if h.cfg.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.cfg.RequestTimeout)
		defer cancel()
	}
	defer childSpan(ctx).End()
	if sc, ok := childTraceContext(ctx); ok {
		_, hasMeta := msg.params["_meta"]
		body = withTraceMeta(body, hasMeta, sc)
	}
	var sse *sseWriter
	var asked []string // the round trips this operation began
	defer func() {
		if asked != nil {
			h.unanswered(r.Context(), s.ID, asked)
		}
	}()
	resp, err := s.Do(ctx, msg.ID, msg.meta["progressToken"], body, func(m *session.Message) {
		if h.asked(r, s.ID, m.Method, m.ID, m.Raw) {
			asked = append(asked, string(m.ID))
		}
		if sse == nil {
			if newSession != "" {
				w.Header().Set("Mcp-Session-Id", newSession)
			}
			sse = startSSE(w)
		}
		sse.event("", m.Raw)
	})
	switch {
	case err == nil:
	case errors.Is(err, session.ErrDuplicateID):
		rpcError(w, http.StatusBadRequest, msg.ID, -32600, "a request with this id is already in flight in this session")
		return
	case errors.Is(err, context.DeadlineExceeded):
		raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": msg.ID,
			"error": map[string]any{"code": -32001, "message": timedOutMessage}})
		resp = &session.Message{Raw: raw}
	case errors.Is(err, context.Canceled):
		if newSession != "" {
			// The client gave up on its initialize (a slow start, its own timeout) and never learned the session: its
			// process would sit idle until --idle-timeout, one more for each retry.
			go h.remove(s)
		}
		return // the client went away
	default:
		if sse != nil {
			return // the session ended mid-stream and its answer is lost: the stream just ends
		}
		rpcError(w, http.StatusNotFound, msg.ID, -32001, "session ended")
		return
	}
	resp.Raw = h.filterResponse(r, msg.Method, resp.Raw)
	if newSession != "" && sse == nil {
		w.Header().Set("Mcp-Session-Id", newSession)
	}
	if newSession != "" && isError(resp.Raw) {
		// A failed initialize leaves no session behind.
		w.Header().Del("Mcp-Session-Id")
		go h.remove(s)
	}
	if sse != nil {
		sse.event("", resp.Raw)
		return
	}
	answerJSON(w, http.StatusOK, resp.Raw)
}

// isError reports whether a JSON-RPC response is an error response.
func isError(raw []byte) bool {
	var r struct {
		Error json.RawMessage `json:"error"`
	}
	return json.Unmarshal(raw, &r) == nil && r.Error != nil
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	if !accepts(r.Header.Get("Accept"), "text/event-stream") {
		httpError(w, http.StatusNotAcceptable, "Accept must allow text/event-stream")
		return
	}
	if h.shared != nil {
		h.getShared(w, r)
		return
	}
	s, status, msg := h.requestSession(r)
	if s == nil {
		httpError(w, status, "%s", msg)
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
	events, replay, err := s.OpenStream(last, resume)
	if errors.Is(err, session.ErrStreamBusy) {
		httpError(w, http.StatusConflict, "a stream is already open for this session")
		return
	}
	if err != nil {
		httpError(w, http.StatusNotFound, "session not found")
		return
	}
	defer s.CloseStream(events)
	h.streamEvents(w, r, s.ID, replay, events, s.Done())
}

// lastEventID reads a GET's Last-Event-ID: resume says whether there is one; a malformed one is answered 400 (ok false).
func lastEventID(w http.ResponseWriter, r *http.Request) (last uint64, resume, ok bool) {
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		return 0, false, true
	}
	last, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "Last-Event-ID %q is not an event id of this proxy", id)
		return 0, false, false
	}
	return last, true, true
}

// streamEvents answers a GET with a session's standalone stream: the events replayed after Last-Event-ID, then each
// event as it comes, with keep-alive comments, until the session ends (done) or the client goes.
func (h *Handler) streamEvents(w http.ResponseWriter, r *http.Request, sid string, replay []session.Event, events <-chan session.Event, done <-chan struct{}) {
	sse := startSSE(w)
	for _, e := range replay {
		h.askedOnStream(r, sid, e.Raw)
		sse.event(strconv.FormatUint(e.Seq, 10), e.Raw)
	}
	tick := time.NewTicker(h.cfg.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case e := <-events:
			h.askedOnStream(r, sid, e.Raw)
			sse.event(strconv.FormatUint(e.Seq, 10), e.Raw)
		case <-tick.C:
			sse.comment("keep-alive")
		case <-done:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	if h.shared != nil {
		h.deleteShared(w, r)
		return
	}
	s, status, msg := h.requestSession(r)
	if s == nil {
		httpError(w, status, "%s", msg)
		return
	}
	// The session is gone for clients at once; its child is reaped in the background.
	h.forget(s)
	go s.Close(childGrace)
	w.WriteHeader(http.StatusNoContent)
}

// requestSession is the session a GET or DELETE names in Mcp-Session-Id, or the status and message of its absence.
func (h *Handler) requestSession(r *http.Request) (*session.Session, int, string) {
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		return nil, http.StatusBadRequest, "missing Mcp-Session-Id"
	}
	if s := h.lookup(sid, r); s != nil {
		return s, 0, ""
	}
	return nil, http.StatusNotFound, "session not found"
}

// lookup finds a session that belongs to the requesting user. Another user's session is reported as missing, so
// session ids cannot be probed across users.
func (h *Handler) lookup(id string, r *http.Request) *session.Session {
	h.mu.Lock()
	s := h.sessions[id]
	h.mu.Unlock()
	if s == nil || s.UserID != h.userOf(r) {
		return nil
	}
	return s
}

func (h *Handler) forget(s *session.Session) {
	h.mu.Lock()
	if h.sessions[s.ID] == s {
		delete(h.sessions, s.ID)
		h.pool.Wake() // room for one more
	}
	h.mu.Unlock()
	h.endRoundTrips(s.ID)
}

func (h *Handler) remove(s *session.Session) {
	h.forget(s)
	s.Close(childGrace)
}
