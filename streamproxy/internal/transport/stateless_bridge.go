package transport

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

// Bridging: a 2026-07-28 client in front of a child that speaks only the session revisions. The proxy initialized
// the child (stateless_worker.go); here it answers what the child cannot (server/discover, subscriptions/listen)
// from what the child declared, and carries the child's own requests (elicitation, sampling, roots) to the client
// as input requests of an InputRequiredResult. The child's request stays open meanwhile: the client's retry, which
// echoes the requestState the proxy gave it, brings the answer, and the original call carries on where it stopped.

// inputTimeout is how long a call waits, parked, for its client to come back with the input it was asked for.
const inputTimeout = 10 * time.Minute

// requestStatePrefix marks the request state the proxy issues, so a stale or foreign one is told apart.
const requestStatePrefix = "streamproxy:"

// inputCapability is the client capability each child request needs.
var inputCapability = map[string]string{"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}

// parked is a bridged call waiting for its client to answer an input request.
type parked struct {
	token    string
	user     string
	wk       *worker
	call     *session.Call
	key      json.RawMessage
	progress json.RawMessage
	method   string // the client request's method and name, which the retry must repeat
	name     string
	childReq json.RawMessage // the child's request id, answered with the client's input
	inputKey string
	request  json.RawMessage // {"method":...,"params":...} as the client was shown it
	timer    *time.Timer
	trip     roundTrip // for the audit trail, from when the client was first asked
}

func (h *Handler) serveBridged(w http.ResponseWriter, r *http.Request, wk *worker, q *statelessRequest) {
	switch q.Method {
	case "server/discover":
		h.discover(w, wk, q)
		return
	case "subscriptions/listen":
		h.listen(w, r, wk, q)
		return
	}
	if _, ok := q.Params["requestState"]; ok {
		h.resume(w, r, wk, q)
		return
	}
	x, err := h.send(w, r, wk, q)
	if err != nil {
		return
	}
	x.wait()
}

// discover answers server/discover from the bridged child's initialize result.
func (h *Handler) discover(w http.ResponseWriter, wk *worker, q *statelessRequest) {
	res := map[string]any{
		"resultType":        "complete",
		"supportedVersions": statelessVersions,
		"capabilities":      wk.bridged.Capabilities,
		"_meta":             map[string]any{metaServerInfo: wk.bridged.ServerInfo},
	}
	if wk.bridged.Instructions != "" {
		res["instructions"] = wk.bridged.Instructions
	}
	writeResult(w, q.ID, res)
}

// inputRequired parks the call on a child request and answers the client with an InputRequiredResult; a request
// the client did not declare the capability for is refused to the child instead, and the call goes on.
func (x *exchange) inputRequired(m *session.Message) bool {
	need, known := inputCapability[m.Method]
	if !known || !x.declares(need) {
		reason := "the client cannot answer " + m.Method
		if known {
			reason = "the client did not declare the " + need + " capability"
		}
		x.wk.refuse(m.ID, codeMethodNotFound, reason)
		return false
	}
	var child struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(m.Raw, &child) != nil {
		x.wk.refuse(m.ID, -32603, "malformed request")
		return false
	}
	request, _ := json.Marshal(child)
	p := &parked{user: x.h.userOf(x.r), wk: x.wk, call: x.call, key: x.key, progress: x.progress, method: x.q.Method,
		name: nameOf(x.q), childReq: m.ID, inputKey: need, request: request,
		trip: roundTrip{method: child.Method, start: time.Now(), bytes: int64(len(request)), who: x.h.askedWhom(x.r)}}
	x.h.park(p)
	x.write(inputRequiredResult(x.q.ID, p))
	return true
}

func inputRequiredResult(id json.RawMessage, p *parked) []byte {
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "result": map[string]any{
		"resultType":    "input_required",
		"inputRequests": map[string]json.RawMessage{p.inputKey: p.request},
		"requestState":  p.token,
	}})
	return raw
}

// park keeps a call for its client's retry under a fresh token, until inputTimeout.
func (h *Handler) park(p *parked) {
	id, err := session.RandomID()
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	p.token = requestStatePrefix + id
	h.mu.Lock()
	h.parked[p.token] = p
	h.mu.Unlock()
	p.timer = time.AfterFunc(h.parkFor, func() {
		if h.unpark(p.token) != nil {
			// Nobody came back: the child's question gets an error, and its call is cancelled.
			if h.cfg.Audit != nil && slices.Contains(roundTripMethods, p.trip.method) {
				h.recordRoundTrip(context.Background(), p.trip, "", audit.OutcomeUnanswered, 0, 0)
			}
			p.wk.refuse(p.childReq, -32603, "the client did not answer in time")
			p.wk.cancel(p.call, p.key, "the client did not answer the input request")
		}
	})
}

func (h *Handler) unpark(token string) *parked {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.parked[token]
	delete(h.parked, token)
	return p
}

// resume carries a client's retry to the parked call it names: the input goes to the child as the answer to its
// request, and the call's next messages come back on this request.
func (h *Handler) resume(w http.ResponseWriter, r *http.Request, wk *worker, q *statelessRequest) {
	token := q.stringParam("requestState")
	h.mu.Lock()
	p := h.parked[token]
	// Shared processes: the retry may have been dealt another process, and the parked call's is the one.
	if p == nil || (p.wk != wk && h.shared == nil) || p.user != h.userOf(r) || p.method != q.Method || p.name != nameOf(q) {
		// Another user's, another request's, tampered with or expired: the same answer for each, so a token
		// cannot be probed.
		h.mu.Unlock()
		rpcError(w, http.StatusBadRequest, q.ID, codeInvalidParams,
			"requestState is unknown, expired or belongs to another request: send the request again without it")
		return
	}
	delete(h.parked, token)
	h.mu.Unlock()
	p.timer.Stop()
	wk = p.wk

	var responses map[string]json.RawMessage
	_ = json.Unmarshal(q.Params["inputResponses"], &responses)
	answer, ok := responses[p.inputKey]
	if !ok {
		// The client retried without the input: ask again.
		h.park(p)
		x := &exchange{h: h, w: w, q: q}
		x.write(inputRequiredResult(q.ID, p))
		return
	}
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": p.childReq, "result": answer})
	if h.cfg.Audit != nil && slices.Contains(roundTripMethods, p.trip.method) {
		h.recordAnswer(r.Context(), p.trip, "", raw)
	}
	if err := wk.s.Send(raw); err != nil {
		rpcError(w, http.StatusServiceUnavailable, q.ID, -32603, "the MCP server process ended; try again")
		return
	}
	x := &exchange{h: h, wk: wk, w: w, r: r, q: q, call: p.call, key: p.key, progress: p.progress}
	x.wait()
}

// declares reports whether the request's client capabilities include one.
func (x *exchange) declares(capability string) bool {
	var caps map[string]json.RawMessage
	_ = json.Unmarshal(x.q.Meta[metaClientCapabilities], &caps)
	_, ok := caps[capability]
	return ok
}

// logLevels are the syslog severities of notifications/message, least severe first.
var logLevels = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

// wantsLog reports whether a bridged child's log message goes to the client: 2026-07-28 clients ask for log
// messages per request, with a minimum level in _meta, and get none otherwise.
func (x *exchange) wantsLog(raw []byte) bool {
	var want string
	if json.Unmarshal(x.q.Meta[metaLogLevel], &want) != nil {
		return false
	}
	return atLevel(raw, want)
}

// atLevel reports whether the log message raw (notifications/message) is at level want or above; an unknown want
// lets nothing through.
func atLevel(raw []byte, want string) bool {
	var msg struct {
		Params struct {
			Level string `json:"level"`
		} `json:"params"`
	}
	if json.Unmarshal(raw, &msg) != nil {
		return false
	}
	return slices.Contains(logLevels, want) && slices.Index(logLevels, msg.Params.Level) >= slices.Index(logLevels, want)
}

func nameOf(q *statelessRequest) string {
	if field, ok := methodsWithName[q.Method]; ok {
		return q.stringParam(field)
	}
	return ""
}

// listener is one bridged subscriptions/listen stream and what it asked for.
type listener struct {
	id        json.RawMessage // the listen request's id: the subscription id
	tools     bool
	prompts   bool
	resources bool
	uris      []string
	out       chan []byte
}

// wants reports whether a notification from the child belongs on this stream.
func (l *listener) wants(method string, raw []byte) bool {
	switch method {
	case "notifications/tools/list_changed":
		return l.tools
	case "notifications/prompts/list_changed":
		return l.prompts
	case "notifications/resources/list_changed":
		return l.resources
	case "notifications/resources/updated":
		var n struct {
			Params struct {
				URI string `json:"uri"`
			} `json:"params"`
		}
		return json.Unmarshal(raw, &n) == nil && slices.Contains(l.uris, n.Params.URI)
	}
	return false
}

// listen serves subscriptions/listen for a bridged child: the acknowledgment names what the child can deliver, then
// the child's change notifications that the client asked for follow, each with the subscription id.
func (h *Handler) listen(w http.ResponseWriter, r *http.Request, wk *worker, q *statelessRequest) {
	var asked struct {
		ToolsListChanged      bool     `json:"toolsListChanged"`
		PromptsListChanged    bool     `json:"promptsListChanged"`
		ResourcesListChanged  bool     `json:"resourcesListChanged"`
		ResourceSubscriptions []string `json:"resourceSubscriptions"`
	}
	_ = json.Unmarshal(q.Params["notifications"], &asked)
	l := &listener{id: q.ID, out: make(chan []byte, 64),
		tools:     asked.ToolsListChanged && wk.bridged.can("tools", "listChanged"),
		prompts:   asked.PromptsListChanged && wk.bridged.can("prompts", "listChanged"),
		resources: asked.ResourcesListChanged && wk.bridged.can("resources", "listChanged"),
	}
	if wk.bridged.can("resources", "subscribe") {
		l.uris = asked.ResourceSubscriptions
	}
	ack := map[string]any{}
	if l.tools {
		ack["toolsListChanged"] = true
	}
	if l.prompts {
		ack["promptsListChanged"] = true
	}
	if l.resources {
		ack["resourcesListChanged"] = true
	}
	if len(l.uris) > 0 {
		ack["resourceSubscriptions"] = l.uris
	}
	wk.subscribe(r.Context(), l)
	defer wk.unsubscribe(l)

	sse := startSSE(w)
	first, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
		"params": map[string]any{"_meta": map[string]any{metaSubscriptionID: q.ID}, "notifications": ack}})
	sse.event("", first)
	tick := time.NewTicker(h.cfg.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case raw := <-l.out:
			sse.event("", raw)
		case <-tick.C:
			sse.comment("keep-alive")
		case <-wk.s.Done():
			// The child is gone: the subscription ends without the graceful response, so the client re-listens.
			return
		case <-r.Context().Done():
			return
		}
	}
}

// subscribe registers a listener, subscribing the child to the resources it is first to ask for.
func (wk *worker) subscribe(ctx context.Context, l *listener) {
	wk.mu.Lock()
	wk.listeners[l] = struct{}{}
	wk.mu.Unlock()
	wk.hold(ctx, l.uris)
}

// hold subscribes the child to the resources nobody subscribed to yet, and counts who holds each.
func (wk *worker) hold(ctx context.Context, uris []string) {
	wk.mu.Lock()
	var fresh []string
	for _, uri := range uris {
		if wk.subs[uri]++; wk.subs[uri] == 1 {
			fresh = append(fresh, uri)
		}
	}
	wk.mu.Unlock()
	for _, uri := range fresh {
		_, _, _ = wk.request(ctx, "resources/subscribe", map[string]string{"uri": uri})
	}
}

// unsubscribe removes a listener, unsubscribing the child from the resources nobody listens to any more.
func (wk *worker) unsubscribe(l *listener) {
	wk.mu.Lock()
	delete(wk.listeners, l)
	wk.mu.Unlock()
	wk.release(l.uris)
}

// release drops a hold on resources, unsubscribing the child from those nobody holds any more.
func (wk *worker) release(uris []string) {
	wk.mu.Lock()
	var stale []string
	for _, uri := range uris {
		if wk.subs[uri]--; wk.subs[uri] == 0 {
			delete(wk.subs, uri)
			stale = append(stale, uri)
		}
	}
	wk.mu.Unlock()
	for _, uri := range stale {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			_, _, _ = wk.request(ctx, "resources/unsubscribe", map[string]string{"uri": uri})
		}()
	}
}

// broadcast hands a change notification from the child to the listeners that asked for it.
func (wk *worker) broadcast(m *session.Message) {
	if !strings.HasPrefix(m.Method, "notifications/") {
		return
	}
	wk.mu.Lock()
	defer wk.mu.Unlock()
	for l := range wk.listeners {
		if !l.wants(m.Method, m.Raw) {
			continue
		}
		raw, err := withSubscriptionID(m.Raw, l.id)
		if err != nil {
			continue
		}
		select {
		case l.out <- raw:
		default: // a listener that does not read loses notifications, not the worker
		}
	}
}

// withSubscriptionID sets params._meta's subscription id of a notification.
func withSubscriptionID(raw []byte, id json.RawMessage) ([]byte, error) {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msg); err != nil {
		return nil, err
	}
	var params map[string]json.RawMessage
	_ = json.Unmarshal(msg["params"], &params)
	if params == nil {
		params = map[string]json.RawMessage{}
	}
	var meta map[string]json.RawMessage
	_ = json.Unmarshal(params["_meta"], &meta)
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	meta[metaSubscriptionID] = id
	params["_meta"], _ = json.Marshal(meta)
	msg["params"], _ = json.Marshal(params)
	return json.Marshal(msg)
}

func writeResult(w http.ResponseWriter, id json.RawMessage, result any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": id, "result": result})
}
