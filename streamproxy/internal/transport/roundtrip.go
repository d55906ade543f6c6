package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// A server asks its client for input in a round trip through the proxy: the server's request (elicitation/create,
// sampling/createMessage) goes out on the stream of the client's request it belongs to, or on the session's GET
// stream, and the client's answer comes back in a POST of its own (on 2026-07-28's path, with a bridged child: in an
// InputRequiredResult, and the client's retry with its input). Each round trip is one audit event, named after the
// server's method, with how it ended (the user accepted, declined or cancelled an elicitation; a sampling result or
// a JSON-RPC error; no answer before its operation or its session ended), how long the client took, and who was
// asked; never the question or the answer.

// roundTripMethods are the server requests whose round trips are audited.
var roundTripMethods = []string{"elicitation/create", "sampling/createMessage"}

// maxRoundTrips bounds the round trips a session may have waiting for their answer: a server that keeps asking
// a client that never answers must not grow the proxy's memory. One beyond it is not audited, and logged.
const maxRoundTrips = 64

// roundTrip is a server's request that went out to the client, waiting for its answer.
type roundTrip struct {
	method string
	start  time.Time
	bytes  int64     // the request, as the client got it
	who    askedWhom // from the request that carried the question out
}

// askedWhom is who a round trip's question went to.
type askedWhom struct{ user, login, client, protocol string }

func (h *Handler) askedWhom(r *http.Request) askedWhom {
	return askedWhom{user: h.userOf(r), login: headerOf(r, h.cfg.Identity.Login), client: headerOf(r, h.cfg.Identity.Client),
		protocol: r.Header.Get("MCP-Protocol-Version")}
}

// roundTrips are the round trips under way, by session and the server's request id.
type roundTrips struct {
	mu        sync.Mutex
	bySession map[string]map[string]roundTrip
}

// asked notes a server's request relayed to the client of session sid by the request r (a POST whose operation it
// belongs to, or the session's GET stream), when it starts an audited round trip: its method, the id the client
// sees and the message the client gets. It reports whether a round trip began: one already under way (a GET stream
// replaying it) is not begun again.
func (h *Handler) asked(r *http.Request, sid, method string, id json.RawMessage, raw []byte) bool {
	if h.cfg.Audit == nil || id == nil || !slices.Contains(roundTripMethods, method) {
		return false
	}
	t := &h.trips
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bySession == nil {
		t.bySession = map[string]map[string]roundTrip{}
	}
	waiting := t.bySession[sid]
	if waiting == nil {
		waiting = map[string]roundTrip{}
		t.bySession[sid] = waiting
	}
	if _, ok := waiting[string(id)]; ok {
		return false
	}
	if len(waiting) >= maxRoundTrips {
		h.log.Warn("a server request to the client is not audited: too many wait for their answer in this session",
			"session", sid[:min(8, len(sid))], "method", method, "waiting", len(waiting))
		return false
	}
	waiting[string(id)] = roundTrip{method: method, start: time.Now(), bytes: int64(len(raw)), who: h.askedWhom(r)}
	return true
}

// askedOnStream is asked for a message going out on session sid's GET stream (r): a server's question outside any
// operation of the client's. Most events are notifications, told apart without decoding them.
func (h *Handler) askedOnStream(r *http.Request, sid string, raw []byte) {
	if h.cfg.Audit == nil || !slices.ContainsFunc(roundTripMethods, func(m string) bool { return bytes.Contains(raw, []byte(m)) }) {
		return
	}
	var m struct {
		Method string          `json:"method"`
		ID     json.RawMessage `json:"id"`
	}
	if json.Unmarshal(raw, &m) == nil {
		h.asked(r, sid, m.Method, m.ID, raw)
	}
}

// answered records the round trip the client's response msg (body: its bytes) ends, if it ends one of session sid.
func (h *Handler) answered(r *http.Request, sid string, msg incoming, body []byte) {
	if h.cfg.Audit == nil || msg.Method != "" || msg.ID == nil {
		return
	}
	if trip, ok := h.trips.take(sid, string(msg.ID)); ok {
		h.recordAnswer(r.Context(), trip, string(msg.ID), body)
	}
}

// recordAnswer records a round trip the client's answer (a JSON-RPC response) ended; rpcID is as recordRoundTrip's.
func (h *Handler) recordAnswer(ctx context.Context, trip roundTrip, rpcID string, answer []byte) {
	outcome, code := answerOutcome(trip.method, answer)
	h.recordRoundTrip(ctx, trip, rpcID, outcome, code, len(answer))
}

// unanswered records the round trips of session sid under ids that are still waiting when the operation that asked
// them ended (ctx: its request's): an answer that comes after is passed on, but the server stopped waiting for it.
func (h *Handler) unanswered(ctx context.Context, sid string, ids []string) {
	for _, id := range ids {
		if trip, ok := h.trips.take(sid, id); ok {
			h.recordRoundTrip(ctx, trip, id, audit.OutcomeUnanswered, 0, 0)
		}
	}
}

// recordRoundTrip records a round trip that ended with outcome (a JSON-RPC error's code; the answer's size in
// bytes); rpcID is the server's request's id as the client saw it ("": it had none). ctx is the request that ended
// it, if one did.
func (h *Handler) recordRoundTrip(ctx context.Context, trip roundTrip, rpcID, outcome string, code, answer int) {
	h.cfg.Audit.Record(ctx, audit.Event{Name: "mcp." + trip.method, Outcome: outcome, ErrorCode: code,
		Server: h.cfg.ServerName, Protocol: trip.who.protocol, Method: trip.method, RPCID: rpcID,
		UserID: trip.who.user, UserLogin: trip.who.login, ClientID: trip.who.client,
		DurationMS: float64(time.Since(trip.start).Microseconds()) / 1000, BytesIn: int64(answer), BytesOut: trip.bytes})
}

// endRoundTrips records the round trips still waiting in a session that ended as unanswered: their answers can no
// longer come.
func (h *Handler) endRoundTrips(sid string) {
	h.trips.mu.Lock()
	waiting := h.trips.bySession[sid]
	delete(h.trips.bySession, sid)
	h.trips.mu.Unlock()
	for id, trip := range waiting {
		h.recordRoundTrip(context.Background(), trip, id, audit.OutcomeUnanswered, 0, 0)
	}
}

// take removes the round trip of session sid under id, if one waits.
func (t *roundTrips) take(sid, id string) (roundTrip, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	trip, ok := t.bySession[sid][id]
	if ok {
		delete(t.bySession[sid], id)
	}
	return trip, ok
}

// answerOutcome reads how a round trip ended from the client's response: a JSON-RPC error (with its code); for an
// elicitation, the user's action (accepted, declined, cancelled); else a result. Only those members are kept.
func answerOutcome(method string, body []byte) (string, int) {
	var resp struct {
		Result *struct {
			Action string `json:"action"`
		} `json:"result"`
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return audit.OutcomeFailure, 0
	}
	switch {
	case resp.Error != nil:
		return audit.OutcomeRPCError, resp.Error.Code
	case resp.Result == nil:
		return audit.OutcomeFailure, 0
	case method != "elicitation/create":
		return audit.OutcomeResult, 0
	}
	switch resp.Result.Action {
	case "accept":
		return audit.OutcomeAccepted, 0
	case "decline":
		return audit.OutcomeDeclined, 0
	case "cancel":
		return audit.OutcomeCancelled, 0
	}
	return audit.OutcomeResult, 0
}
