package transport

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// A server asks its client for input in a round trip through the proxy: the server's request (elicitation/create,
// sampling/createMessage) goes out on the stream of the client's request it belongs to, and the client's answer
// comes back in a POST of its own (on 2026-07-28's path, with a bridged child: in an InputRequiredResult, and the
// client's retry with its input). Each round trip is one audit event, named after the server's method, with how it
// ended (the user accepted, declined or cancelled an elicitation; a sampling result or a JSON-RPC error), how long
// the client took, and who answered; never the question or the answer.

// roundTripMethods are the server requests whose round trips are audited.
var roundTripMethods = []string{"elicitation/create", "sampling/createMessage"}

// maxRoundTrips bounds the round trips a session may have waiting for their answer: a server that keeps asking
// a client that never answers must not grow the proxy's memory. One beyond it is not audited, and logged.
const maxRoundTrips = 64

// roundTrip is a server's request that went out to the client, waiting for its answer.
type roundTrip struct {
	method string
	start  time.Time
	bytes  int64 // the request, as the client got it
}

// roundTrips are the round trips under way, by session and the server's request id.
type roundTrips struct {
	mu        sync.Mutex
	bySession map[string]map[string]roundTrip
}

// asked notes a server's request relayed to the client of session sid, when it starts an audited round trip: its
// method, the id the client sees and the message the client gets.
func (h *Handler) asked(sid, method string, id json.RawMessage, raw []byte) {
	if h.cfg.Audit == nil || id == nil || !slices.Contains(roundTripMethods, method) {
		return
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
	if len(waiting) >= maxRoundTrips {
		h.log.Warn("a server request to the client is not audited: too many wait for their answer in this session",
			"session", sid[:min(8, len(sid))], "method", method, "waiting", len(waiting))
		return
	}
	waiting[string(id)] = roundTrip{method: method, start: time.Now(), bytes: int64(len(raw))}
}

// answered records the round trip the client's response msg (body: its bytes) ends, if it ends one of session sid.
func (h *Handler) answered(r *http.Request, sid string, msg incoming, body []byte) {
	if h.cfg.Audit == nil || msg.Method != "" || msg.ID == nil {
		return
	}
	t := &h.trips
	t.mu.Lock()
	trip, ok := t.bySession[sid][string(msg.ID)]
	if ok {
		delete(t.bySession[sid], string(msg.ID))
	}
	t.mu.Unlock()
	if ok {
		h.recordRoundTrip(r, trip, string(msg.ID), body)
	}
}

// recordRoundTrip records a round trip the client's request r ended with answer (a JSON-RPC response); rpcID is the
// server's request's id as the client saw it ("": it had none).
func (h *Handler) recordRoundTrip(r *http.Request, trip roundTrip, rpcID string, answer []byte) {
	outcome, code := answerOutcome(trip.method, answer)
	h.cfg.Audit.Record(r.Context(), audit.Event{Name: "mcp." + trip.method, Outcome: outcome, ErrorCode: code,
		Server: h.cfg.ServerName, Protocol: r.Header.Get("MCP-Protocol-Version"), Method: trip.method, RPCID: rpcID,
		UserID: h.userOf(r), UserLogin: headerOf(r, h.cfg.Identity.Login), ClientID: headerOf(r, h.cfg.Identity.Client),
		DurationMS: float64(time.Since(trip.start).Microseconds()) / 1000, BytesIn: int64(len(answer)), BytesOut: trip.bytes})
}

// endRoundTrips forgets the round trips of a session that ended: their answers can no longer come.
func (h *Handler) endRoundTrips(sid string) {
	h.trips.mu.Lock()
	delete(h.trips.bySession, sid)
	h.trips.mu.Unlock()
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
