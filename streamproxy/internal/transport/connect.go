package transport

// Connect on first use: a process whose --env names an upstream token starts only once the broker has the user's
// token (package broker). A user who has not connected the upstream gets, in place of the request that would start
// the process, what the protocol offers to send a person to a page and retry:
//
//   - session revisions (initialize): a client of 2025-11-25 that declared URL-mode elicitation gets
//     URLElicitationRequiredError (-32042) with the connect page as a URL-mode elicitation;
//   - 2026-07-28: a client that declared URL-mode elicitation gets, for a tools/call, prompts/get or resources/read,
//     an InputRequiredResult whose input request is a URL-mode elicitation/create (its retry echoes the request
//     state, which the proxy strips before the request goes on, and starts the process if the user connected
//     meanwhile), and for any other request URLElicitationRequiredError as above;
//   - any other client gets an error whose message holds the page's URL.
//
// No process starts before the user has connected.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/broker"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

// codeURLElicitationRequired is URLElicitationRequiredError of 2025-11-25.
const codeURLElicitationRequired = -32042

// connectStatePrefix marks the request state of a connect elicitation; what follows it is the upstream's name. It
// grants nothing: the retry is served like a first request, and the broker decides again.
const connectStatePrefix = "streamproxy-connect:"

// multiRoundTripMethods are the 2026-07-28 requests an InputRequiredResult may answer.
var multiRoundTripMethods = []string{"tools/call", "prompts/get", "resources/read"}

// credentials fetches the user's upstream tokens for a new process and fills them into its command; nil when the
// command names none.
func (h *Handler) credentials(ctx context.Context, user string, cmd *session.Command) (*broker.Process, error) {
	if h.cfg.Credentials == nil {
		return nil, nil
	}
	env, p, err := h.cfg.Credentials.Start(ctx, user, cmd.Env)
	if err != nil {
		return nil, err
	}
	cmd.Env = env
	if dir := p.Dir(); dir != "" {
		// Its own token files, and no other process's: the rest of the token directory stays closed to it.
		cmd.UserPaths = append(slices.Clip(cmd.UserPaths), dir)
	}
	return p, nil
}

// watchCredentials removes a process's token files once it has ended, and ends it (with end) when the broker says
// its user's connection is gone.
func watchCredentials(s *session.Session, p *broker.Process, end func()) {
	if p == nil {
		return
	}
	go func() {
		select {
		case <-s.Done():
		case <-p.Gone():
			end()
		}
		p.Close()
	}()
}

// connectRequired logs that a request met the connect page in place of a process (the upstreams, never the URL).
func (h *Handler) connectRequired(r *http.Request, cr *broker.ConnectRequired) {
	names := make([]string, len(cr.Connects))
	for i, c := range cr.Connects {
		names[i] = c.Upstream
	}
	h.log.InfoContext(r.Context(), "the user has not connected an upstream the MCP server needs: answered with its connect page", "upstreams", names)
}

// elicitations are the URL-mode elicitations that send the user to each connect page.
func elicitations(cr *broker.ConnectRequired) []map[string]any {
	out := make([]map[string]any, 0, len(cr.Connects))
	for _, c := range cr.Connects {
		id, err := session.RandomID()
		if err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		out = append(out, map[string]any{"mode": "url", "elicitationId": id, "url": c.URL,
			"message": fmt.Sprintf("This MCP server acts as you on %s: connect your %s account, then try again.", c.DisplayName, c.DisplayName)})
	}
	return out
}

// connectMessage is the error message for a client without URL-mode elicitation: the pages themselves.
func connectMessage(cr *broker.ConnectRequired) string {
	parts := make([]string, len(cr.Connects))
	for i, c := range cr.Connects {
		parts[i] = fmt.Sprintf("connect your %s account at %s", c.DisplayName, c.URL)
	}
	return "This MCP server acts as you on another service: " + strings.Join(parts, "; ") + " (in a browser), then try again."
}

// declaresURLElicitation reports whether capabilities (a client's) include elicitation.url.
func declaresURLElicitation(capabilities json.RawMessage) bool {
	var caps struct {
		Elicitation *struct {
			URL json.RawMessage `json:"url"`
		} `json:"elicitation"`
	}
	return json.Unmarshal(capabilities, &caps) == nil && caps.Elicitation != nil && caps.Elicitation.URL != nil
}

// connectSession answers an initialize whose process needs a connection the user has not made.
func connectSession(w http.ResponseWriter, msg incoming, cr *broker.ConnectRequired) {
	var version string
	_ = json.Unmarshal(msg.params["protocolVersion"], &version)
	if version == "2025-11-25" && declaresURLElicitation(msg.params["capabilities"]) {
		rpcErrorData(w, http.StatusOK, msg.ID, codeURLElicitationRequired, connectMessage(cr),
			map[string]any{"elicitations": elicitations(cr)})
		return
	}
	rpcError(w, http.StatusOK, msg.ID, -32000, connectMessage(cr))
}

// connectStateless answers a 2026-07-28 request whose process needs a connection the user has not made.
func connectStateless(w http.ResponseWriter, q *statelessRequest, cr *broker.ConnectRequired) {
	switch {
	case !declaresURLElicitation(q.Meta[metaClientCapabilities]):
		rpcError(w, http.StatusOK, q.ID, -32000, connectMessage(cr))
		return
	case !slices.Contains(multiRoundTripMethods, q.Method):
		// Only these requests may be answered with input requests; any other (server/discover, a list) gets the
		// error form of the same elicitation.
		rpcErrorData(w, http.StatusOK, q.ID, codeURLElicitationRequired, connectMessage(cr),
			map[string]any{"elicitations": elicitations(cr)})
		return
	}
	requests := map[string]any{}
	for i, e := range elicitations(cr) {
		requests["connect-"+cr.Connects[i].Upstream] = map[string]any{"method": "elicitation/create", "params": e}
	}
	writeResult(w, q.ID, map[string]any{
		"resultType":    "input_required",
		"inputRequests": requests,
		"requestState":  connectStatePrefix + cr.Connects[0].Upstream,
	})
}

// connectRetry takes a 2026-07-28 retry that answers a connect elicitation: the request state and the answers are
// the proxy's, stripped before the request goes on. It reports false, with the client answered, when the user
// declined.
func connectRetry(w http.ResponseWriter, q *statelessRequest) bool {
	state := q.stringParam("requestState")
	upstream, ok := strings.CutPrefix(state, connectStatePrefix)
	if !ok {
		return true
	}
	var responses map[string]struct {
		Action string `json:"action"`
	}
	_ = json.Unmarshal(q.Params["inputResponses"], &responses)
	delete(q.Params, "requestState")
	delete(q.Params, "inputResponses")
	q.RawParams, _ = json.Marshal(q.Params)
	if a := responses["connect-"+upstream].Action; (a == "decline" || a == "cancel") && broker.IsUpstreamName(upstream) {
		rpcError(w, http.StatusOK, q.ID, -32000, fmt.Sprintf("the user did not connect %s, which this MCP server needs", upstream))
		return false
	}
	return true
}

// asConnectRequired reports whether err is the broker's ConnectRequired.
func asConnectRequired(err error) (*broker.ConnectRequired, bool) {
	var cr *broker.ConnectRequired
	return cr, errors.As(err, &cr)
}
