package transport

import (
	"encoding/json"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

// Hidden roots (Config.HideRoots). A server such as server-filesystem replaces the directories it was started with
// by the roots a client names, and asks for them whatever the client declared: hiding the capability is not enough.
// So the child learns of no roots capability (initialize, 2026-07-28 request metadata, the bridge's own initialize),
// every roots/list it sends anyway is answered by the proxy with no roots, and whatever a client says about roots
// stays with the proxy. No roots rather than the user's directory: server-filesystem keeps its directories when it
// gets none, and a directory named here would widen a server started on a narrower one.

// noRoots answers a child's roots/list in place of the client; other requests go their way (nil).
func noRoots(m *session.Message) []byte {
	if m.Method != "roots/list" {
		return nil
	}
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{"roots": []any{}}})
	return raw
}

// answerer is the session hook that answers the child's requests in the proxy, if any does.
func (h *Handler) answerer() func(*session.Message) []byte {
	if h.cfg.HideRoots {
		return noRoots
	}
	return nil
}

// aboutRoots reports whether a client's notification or response speaks of roots: the list-changed notification,
// or a result that lists roots (an answer to a roots/list, whatever id it names: the child's own roots requests are
// answered by the proxy, and a client could guess their ids).
func aboutRoots(msg incoming, body []byte) bool {
	if msg.Method == "notifications/roots/list_changed" {
		return true
	}
	if msg.Method != "" || msg.ID == nil {
		return false
	}
	var resp struct {
		Result struct {
			Roots json.RawMessage `json:"roots"`
		} `json:"result"`
	}
	return json.Unmarshal(body, &resp) == nil && resp.Result.Roots != nil
}

// hideRootsInRequest takes roots out of a 2026-07-28 request before anything reads it (the bridge's capability check
// included): the capability from its metadata, and any answer that lists roots from its input responses (a child
// that speaks 2026-07-28 asks through InputRequiredResult), which gets an empty list instead.
func hideRootsInRequest(q *statelessRequest) {
	caps, changed := withoutRoots(q.Meta[metaClientCapabilities])
	if changed {
		q.Meta[metaClientCapabilities] = caps
		q.Params["_meta"], _ = json.Marshal(q.Meta)
	}
	var answers map[string]json.RawMessage
	if json.Unmarshal(q.Params["inputResponses"], &answers) == nil && answers != nil {
		emptied := false
		for key, answer := range answers {
			var result struct {
				Roots json.RawMessage `json:"roots"`
			}
			if json.Unmarshal(answer, &result) == nil && result.Roots != nil {
				answers[key], emptied = json.RawMessage(`{"roots":[]}`), true
			}
		}
		if emptied {
			q.Params["inputResponses"], _ = json.Marshal(answers)
			changed = true
		}
	}
	if changed {
		q.RawParams, _ = json.Marshal(q.Params)
	}
}

// hideRootsInInitialize removes the roots capability from an initialize request's client capabilities.
func hideRootsInInitialize(body []byte) []byte {
	var msg map[string]json.RawMessage
	var params map[string]json.RawMessage
	if json.Unmarshal(body, &msg) != nil || json.Unmarshal(msg["params"], &params) != nil {
		return body
	}
	caps, ok := params["capabilities"]
	if !ok {
		return body
	}
	if params["capabilities"], ok = withoutRoots(caps); !ok {
		return body
	}
	msg["params"], _ = json.Marshal(params)
	out, err := json.Marshal(msg)
	if err != nil {
		return body
	}
	return out
}

// withoutRoots removes the roots capability from a client's capabilities, and reports whether it was there.
func withoutRoots(caps json.RawMessage) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(caps, &m) != nil {
		return caps, false
	}
	if _, ok := m["roots"]; !ok {
		return caps, false
	}
	delete(m, "roots")
	out, err := json.Marshal(m)
	if err != nil {
		return caps, false
	}
	return out, true
}
