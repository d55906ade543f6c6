package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/jsonobj"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

// statelessVersions are the protocol revisions served on the stateless path, without sessions: every request
// carries its version and the client's capabilities in _meta.
var statelessVersions = []string{"2026-07-28"}

// Request metadata keys and error codes of 2026-07-28.
const (
	metaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	metaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	metaClientInfo         = "io.modelcontextprotocol/clientInfo"
	metaLogLevel           = "io.modelcontextprotocol/logLevel"
	metaSubscriptionID     = "io.modelcontextprotocol/subscriptionId"
	metaServerInfo         = "io.modelcontextprotocol/serverInfo"

	codeHeaderMismatch     = -32020
	codeMissingCapability  = -32021
	codeUnsupportedVersion = -32022
	codeMethodNotFound     = -32601
	codeInvalidParams      = -32602
)

// requestMetaKeys are the request metadata every 2026-07-28 request may carry about its client.
var requestMetaKeys = []string{metaProtocolVersion, metaClientCapabilities, metaClientInfo, metaLogLevel}

// removedMethods are the session revisions' methods that 2026-07-28 dropped; a stateless request for one is an
// unknown method whatever the child speaks.
var removedMethods = []string{"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"}

func isStatelessVersion(v string) bool { return slices.Contains(statelessVersions, v) }

// isStateless tells a request of the stateless revision from one of the session revisions: request metadata in the
// body, or a protocol version header that is not a session revision (an unknown version is the stateless path's to
// refuse, with the list of versions it serves).
func isStateless(r *http.Request, msg incoming) bool {
	if _, ok := msg.meta[metaProtocolVersion]; ok {
		return true
	}
	v := r.Header.Get("MCP-Protocol-Version")
	return v != "" && !slices.Contains(sessionVersions, v)
}

// statelessRequest is a 2026-07-28 request, its params kept as raw fields so that it can be passed on re-keyed.
type statelessRequest struct {
	ID        json.RawMessage
	Method    string
	RawParams json.RawMessage // as the proxy read them (decodeIncoming), passed on as they are unless something in them changes
	Params    map[string]json.RawMessage
	Meta      map[string]json.RawMessage
}

func (q *statelessRequest) stringParam(name string) string {
	var s string
	_ = json.Unmarshal(q.Params[name], &s)
	return s
}

func (h *Handler) serveStateless(w http.ResponseWriter, r *http.Request, msg incoming) {
	q := statelessRequest{ID: msg.ID, Method: msg.Method, RawParams: msg.Params, Params: msg.params, Meta: msg.meta}
	if q.ID == nil {
		if q.Method == "" {
			rpcError(w, http.StatusBadRequest, nil, -32600, "clients do not send JSON-RPC responses in protocol version 2026-07-28")
			return
		}
		// 2026-07-28 defines no client notifications over HTTP (closing a stream is the cancellation): accepted,
		// and nothing reaches a child.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if q.Params == nil {
		q.Params = map[string]json.RawMessage{}
	}
	if status, code, msg, data := checkStateless(r, &q); code != 0 {
		rpcErrorData(w, status, q.ID, code, msg, data)
		return
	}
	if slices.Contains(removedMethods, q.Method) {
		rpcError(w, http.StatusNotFound, q.ID, codeMethodNotFound,
			fmt.Sprintf("method %q is not part of protocol version 2026-07-28 (clients of the session revisions send initialize without request metadata)", q.Method))
		return
	}
	// After the header checks, so that a header naming an allowed tool cannot carry a call to another; before the
	// worker, so that nothing of a refused request reaches a child.
	if !h.authorize(w, r, q.ID, q.Method, q.Params) || h.shared != nil && !h.sharedAllows(w, http.StatusNotFound, q.ID, q.Method, q.Params) {
		return
	}
	if h.cfg.HideRoots || h.shared != nil {
		hideRootsInRequest(&q)
	}
	if !connectRetry(w, &q) {
		return
	}
	wk, err := h.worker(r.Context(), h.userOf(r))
	if cr, ok := asConnectRequired(err); ok {
		h.connectRequired(r, cr)
		connectStateless(w, &q, cr)
		return
	}
	if err != nil {
		h.workerError(w, r, q.ID, err)
		return
	}
	if h.shared != nil && q.Method != "subscriptions/listen" {
		release, err := h.shared.enter(r.Context(), wk)
		if err != nil {
			h.workerError(w, r, q.ID, err)
			return
		}
		defer release()
	}
	wk.s.Touch()
	if q.Method == "tools/call" {
		if bindings, known := wk.toolHeaders(r.Context(), q.stringParam("name")); known {
			if err := checkParamHeaders(r.Header, bindings, q.Params["arguments"]); err != nil {
				rpcError(w, http.StatusBadRequest, q.ID, codeHeaderMismatch, "header mismatch: "+err.Error())
				return
			}
		}
	}
	defer childSpan(r.Context()).End()
	if wk.bridged != nil {
		h.serveBridged(w, r, wk, &q)
		return
	}
	x, err := h.send(w, r, wk, &q)
	if err != nil {
		return
	}
	x.wait()
}

// checkStateless applies the 2026-07-28 request checks that come before any child: the version header against the
// request metadata, the version itself, the required metadata, and the mirrored headers against the body.
func checkStateless(r *http.Request, q *statelessRequest) (status, code int, msg string, data any) {
	header, hasHeader := r.Header["Mcp-Protocol-Version"]
	var version string
	rawVersion, inMeta := q.Meta[metaProtocolVersion]
	if inMeta && json.Unmarshal(rawVersion, &version) != nil {
		return http.StatusBadRequest, codeInvalidParams, fmt.Sprintf("_meta %q must be a string", metaProtocolVersion), nil
	}
	switch {
	case !hasHeader:
		return http.StatusBadRequest, codeHeaderMismatch, "MCP-Protocol-Version header is required", nil
	case !inMeta:
		return http.StatusBadRequest, codeInvalidParams, fmt.Sprintf("missing _meta %q: every 2026-07-28 request carries its protocol version", metaProtocolVersion), nil
	case len(header) != 1 || header[0] != version:
		return http.StatusBadRequest, codeHeaderMismatch,
			fmt.Sprintf("header mismatch: MCP-Protocol-Version %q does not match _meta %q %q", r.Header.Get("MCP-Protocol-Version"), metaProtocolVersion, version), nil
	case !isStatelessVersion(version):
		return http.StatusBadRequest, codeUnsupportedVersion, "unsupported protocol version",
			map[string]any{"supported": statelessVersions, "requested": version}
	}
	if caps, ok := q.Meta[metaClientCapabilities]; !ok || len(caps) == 0 || caps[0] != '{' {
		return http.StatusBadRequest, codeInvalidParams, fmt.Sprintf("missing _meta %q: every 2026-07-28 request carries the client's capabilities", metaClientCapabilities), nil
	}
	if err := checkStandardHeaders(r.Header, q.Method, q.Params); err != nil {
		return http.StatusBadRequest, codeHeaderMismatch, "header mismatch: " + err.Error(), nil
	}
	return 0, 0, "", nil
}

// exchange is one client request in flight at a worker: the messages of the call under the worker's key go back to
// the client under the client's own id and progress token.
type exchange struct {
	h        *Handler
	wk       *worker
	w        http.ResponseWriter
	r        *http.Request
	q        *statelessRequest
	call     *session.Call
	key      json.RawMessage
	progress json.RawMessage // the client's progress token, if any
	sse      *sseWriter
	sess     *sharedSession // the session on shared processes the request is of; nil: a 2026-07-28 request
	asked    []string       // the round trips the session's operation began (sess)
}

// send passes a request to the worker's child under a key of the worker's. On error the client has its answer.
func (h *Handler) send(w http.ResponseWriter, r *http.Request, wk *worker, q *statelessRequest) (*exchange, error) {
	return h.sendFor(w, r, wk, q, nil)
}

// sendFor is send for a request of a session on shared processes (nil: a 2026-07-28 request, which is its own
// caller at the child).
func (h *Handler) sendFor(w http.ResponseWriter, r *http.Request, wk *worker, q *statelessRequest, ss *sharedSession) (*exchange, error) {
	x := &exchange{h: h, wk: wk, w: w, r: r, q: q, key: wk.nextKey(), sess: ss}
	params := q.RawParams
	var progressKey json.RawMessage
	pt, progress := q.Meta["progressToken"]
	// A bridged child speaks a session revision: the 2026-07-28 request metadata is not of its revision (the proxy
	// declared itself in initialize, and acts on the log level itself), and reading it is work for the child.
	strip := wk.bridged != nil && slices.ContainsFunc(requestMetaKeys, func(k string) bool { _, ok := q.Meta[k]; return ok })
	if progress || strip {
		// Params are written anew: the child reports progress under the worker's key.
		meta := maps.Clone(q.Meta)
		if progress {
			x.progress, progressKey, meta["progressToken"] = pt, x.key, x.key
		}
		if strip {
			for _, k := range requestMetaKeys {
				delete(meta, k)
			}
		}
		p := maps.Clone(q.Params)
		if len(meta) == 0 {
			delete(p, "_meta")
		} else {
			p["_meta"], _ = json.Marshal(meta)
		}
		params, _ = json.Marshal(p)
	}
	if sc, ok := childTraceContext(r.Context()); ok {
		params = paramsWithTraceMeta(params, sc)
	}
	// The message is spliced rather than re-encoded: only the id is the worker's (the session compacts it onto one
	// line on its way to the child).
	method, _ := json.Marshal(q.Method)
	raw := make([]byte, 0, len(params)+len(method)+len(x.key)+48)
	raw = append(append(append(raw, `{"jsonrpc":"2.0","id":`...), x.key...), `,"method":`...)
	raw = append(raw, method...)
	if params != nil {
		raw = append(append(raw, `,"params":`...), params...)
	}
	raw = append(raw, '}')
	owner := string(x.key)
	if ss != nil {
		owner = ss.id
	}
	var err error
	if x.call, err = wk.s.CallFor(owner, x.key, progressKey, raw); err != nil {
		rpcError(w, http.StatusServiceUnavailable, q.ID, -32603, "the MCP server process ended; try again")
		return nil, err
	}
	return x, nil
}

// wait relays the call's messages until its response, or cancels it when the client closes the stream.
func (x *exchange) wait() {
	defer func() {
		if x.asked != nil {
			x.h.unanswered(x.r.Context(), x.sess.id, x.asked)
		}
	}()
	ctx := x.r.Context()
	if x.h.cfg.RequestTimeout > 0 && x.q.Method != "subscriptions/listen" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, x.h.cfg.RequestTimeout)
		defer cancel()
	}
	var tick <-chan time.Time
	if x.q.Method == "subscriptions/listen" {
		// A listen stream is long-lived by design: open it now and keep it warm through intermediaries.
		x.stream()
		t := time.NewTicker(x.h.cfg.KeepAlive)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case m := <-x.call.Messages():
			if m.IsResponse() {
				x.call.End()
				x.respond(m)
				return
			}
			if x.relay(m) {
				return // parked until the client retries with the input it was asked for
			}
		case <-tick:
			x.sse.comment("keep-alive")
		case <-ctx.Done():
			x.cancel(ctx.Err())
			return
		case <-x.wk.s.Done():
			// The child is gone; its farewell error, if it could be queued, is answered first.
			select {
			case m := <-x.call.Messages():
				if m.IsResponse() {
					x.respond(m)
					return
				}
			default:
			}
			x.respondError(-32603, "the MCP server process ended")
			return
		}
	}
}

// cancel ends a call its client gave up on: closing the response stream is 2026-07-28's cancellation, which a
// stdio child learns as notifications/cancelled.
func (x *exchange) cancel(why error) {
	reason := "the client closed the response stream"
	if why == context.DeadlineExceeded {
		reason = "the request timed out in the proxy"
		x.respondError(-32001, timedOutMessage)
	}
	x.wk.cancel(x.call, x.key, reason)
}

// relay passes one message of the call's on to the client; it reports whether the call is now parked
// (stateless_bridge.go).
func (x *exchange) relay(m *session.Message) bool {
	if m.ID != nil {
		if x.sess != nil {
			x.sess.ask(x, m)
			return false
		}
		if x.wk.bridged != nil {
			return x.inputRequired(m)
		}
		// 2026-07-28 servers ask through InputRequiredResult; a request on the stream has no client to answer it.
		x.wk.refuse(m.ID, codeMethodNotFound, "server-to-client requests do not exist in protocol version 2026-07-28: return an InputRequiredResult")
		return false
	}
	if m.Method == "notifications/tools/list_changed" {
		x.wk.forgetTools()
	}
	if m.Method == "notifications/message" && (x.sess != nil && !x.sess.wantsLog(m.Raw) ||
		x.sess == nil && x.wk.bridged != nil && !x.wantsLog(m.Raw)) {
		return false
	}
	raw, err := x.restore(m)
	if err != nil {
		return false
	}
	x.stream()
	x.sse.event("", raw)
	return false
}

// restore puts the client's own id, progress token and subscription id back into a message from the child.
func (x *exchange) restore(m *session.Message) ([]byte, error) {
	if out, ok := x.restoreResponse(m); ok {
		return out, nil
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(m.Raw, &msg); err != nil {
		return nil, err
	}
	if _, ok := msg["id"]; ok {
		msg["id"] = x.q.ID
	}
	if p, ok := msg["params"]; ok && (x.progress != nil || x.q.Method == "subscriptions/listen") {
		msg["params"] = x.restoreIn(p, "progressToken", x.progress)
	}
	if res, ok := msg["result"]; ok {
		if x.q.Method == "subscriptions/listen" {
			res = x.restoreIn(res, "", nil)
		}
		if x.q.Method == "tools/list" {
			x.wk.learnTools(res)
		}
		res = x.h.filterResult(x.r, x.q.Method, res)
		if x.wk.bridged != nil && x.sess == nil {
			res = withResultType(res)
		}
		msg["result"] = res
	}
	return json.Marshal(msg)
}

// restoreResponse is restore's common case, spliced rather than re-encoded: a response whose id alone changes, and
// for a bridged child the result's resultType (not a listen stream's, not a tools/list whose tools the proxy learns,
// not a list the policy filters). Its result or error was read with the rest of the message's head
// (session.Message).
func (x *exchange) restoreResponse(m *session.Message) ([]byte, bool) {
	if x.q.Method == "subscriptions/listen" || x.q.Method == "tools/list" || x.h.filters(x.q.Method) ||
		!m.IsResponse() || (m.Result == nil) == (m.Error == nil) {
		return nil, false
	}
	field, value := `,"result":`, m.Result
	if m.Error != nil {
		field, value = `,"error":`, m.Error
	}
	typed := x.wk.bridged != nil && m.Result != nil
	if typed && (value[0] != '{' || hasMember(value, "resultType")) {
		typed = false // withResultType would leave it as it is
	}
	out := make([]byte, 0, len(value)+len(x.q.ID)+len(completeResult)+32)
	out = append(append(append(out, `{"jsonrpc":"2.0","id":`...), x.q.ID...), field...)
	if typed {
		out = append(out, completeResult...)
		if rest := bytes.TrimLeft(value[1:], " \t\r\n"); rest[0] != '}' {
			out = append(out, ',')
		}
		value = value[1:]
	}
	return append(append(out, value...), '}'), true
}

// completeResult opens a bridged child's result, marked complete as every 2026-07-28 result is (withResultType).
const completeResult = `{"resultType":"complete"`

// hasMember reports whether the object obj has a member name.
func hasMember(obj []byte, name string) bool {
	found := false
	_ = jsonobj.Each(obj, func(n, _ []byte) error {
		found = found || string(n) == name
		return nil
	})
	return found
}

// restoreIn rewrites, in a params or result object, field (when set) to value and _meta's subscription id to the
// client's request id.
func (x *exchange) restoreIn(obj json.RawMessage, field string, value json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return obj
	}
	if _, ok := m[field]; ok && field != "" && value != nil {
		m[field] = value
	}
	if rawMeta, ok := m["_meta"]; ok {
		var meta map[string]json.RawMessage
		if json.Unmarshal(rawMeta, &meta) == nil {
			if _, ok := meta[metaSubscriptionID]; ok {
				meta[metaSubscriptionID] = x.q.ID
				m["_meta"], _ = json.Marshal(meta)
			}
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return obj
	}
	return out
}

// withResultType marks a bridged child's result as complete, as every 2026-07-28 result is marked.
func withResultType(res json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(res, &m) != nil || m == nil {
		return res
	}
	if _, ok := m["resultType"]; ok {
		return res
	}
	m["resultType"] = json.RawMessage(`"complete"`)
	out, err := json.Marshal(m)
	if err != nil {
		return res
	}
	return out
}

// respond writes the call's response: on the stream if one is open, else as JSON with the HTTP status 2026-07-28
// gives its error (404 for an unknown method, 400 for bad params, an unsupported version or a missing capability).
func (x *exchange) respond(m *session.Message) {
	raw, err := x.restore(m)
	if err != nil {
		x.respondError(-32603, "the MCP server sent a malformed response")
		return
	}
	x.write(raw)
}

func (x *exchange) respondError(code int, message string) {
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": x.q.ID, "error": rpcErr{Code: code, Message: message}})
	x.write(raw)
}

func (x *exchange) write(raw []byte) {
	if x.sse != nil {
		x.sse.event("", raw)
		return
	}
	status := http.StatusOK
	var resp struct {
		Error *rpcErr `json:"error"`
	}
	// Only a message that mentions an error can be one: most answers skip the second decode.
	if x.sess == nil && bytes.Contains(raw, []byte(`"error"`)) && json.Unmarshal(raw, &resp) == nil && resp.Error != nil {
		switch resp.Error.Code {
		case codeMethodNotFound:
			status = http.StatusNotFound
		case codeInvalidParams, codeUnsupportedVersion, codeMissingCapability, codeHeaderMismatch:
			status = http.StatusBadRequest
		}
	}
	answerJSON(x.w, status, raw)
}

// stream turns the answer into an SSE stream, once.
func (x *exchange) stream() {
	if x.sse == nil {
		x.sse = startSSE(x.w)
	}
}
