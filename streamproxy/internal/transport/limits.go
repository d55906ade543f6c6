package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Each user's share of a replica besides their processes (--max-per-user): the streams they hold open (sessions' GET
// streams and 2026-07-28 subscriptions/listen streams) and their requests in flight. Without it one user could open
// thousands of streams on the one worker --max-per-user allows them, each holding a goroutine and its buffers.
// Requests without an identity (--user-header '') are not counted, as with --max-per-user.

var (
	errUserStreams = errors.New("this user holds too many open streams")
	errUserCalls   = errors.New("this user has too many requests in flight")
)

// userLoad is what one user holds now.
type userLoad struct{ streams, calls int }

// admit counts a stream (or a request in flight) of the user's until release is called, or refuses it when the user
// is at the limit.
func (h *Handler) admit(user string, stream bool) (release func(), err error) {
	limit, full := h.cfg.UserCalls, errUserCalls
	if stream {
		limit, full = h.cfg.UserStreams, errUserStreams
	}
	if user == "" || limit <= 0 {
		return func() {}, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.load[user]
	if l == nil {
		l = &userLoad{}
		h.load[user] = l
	}
	n := &l.calls
	if stream {
		n = &l.streams
	}
	if *n >= limit {
		return nil, full
	}
	*n++
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		*n--
		if l.streams == 0 && l.calls == 0 {
			delete(h.load, user)
		}
	}, nil
}

// refuseLoad answers a request beyond the user's streams or requests in flight: 429 with Retry-After, as a JSON-RPC
// error when the request has an id.
func (h *Handler) refuseLoad(w http.ResponseWriter, id json.RawMessage, err error) {
	reason, what, limit, flag := "user_calls", "requests in flight", h.cfg.UserCalls, "--max-calls-per-user"
	if errors.Is(err, errUserStreams) {
		reason, what, limit, flag = "user_streams", "streams open", h.cfg.UserStreams, "--max-streams-per-user"
	}
	h.cfg.Metrics.Limited(reason)
	w.Header().Set("Retry-After", "10")
	message := fmt.Sprintf("this user has %d %s, the most this server allows each user (%s): end one, or try again later", limit, what, flag)
	if id == nil {
		httpError(w, http.StatusTooManyRequests, "%s", message)
		return
	}
	rpcError(w, http.StatusTooManyRequests, id, -32000, message)
}
