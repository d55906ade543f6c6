package transport

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/policy"
)

// Per-tool authorization (docs/policy.md): on both paths, a request that uses a tool, a prompt or a resource is
// decided by the policy before anything reaches the child, and lists are filtered on their way back. The policy
// decides; this file only reads the caller from the gateway's headers and answers what the policy decided.

// codeNotAllowed is the JSON-RPC error of a request the policy refuses: one of the implementation-defined server
// errors, apart from the proxy's others, so a client can tell "not for you" from "no such tool" (-32601) and from a
// malformed request (-32602).
const codeNotAllowed = -32003

// rateLimited is the audit trail's decision on a request the policy allowed but one of its rate limits refused.
const rateLimited = "rate_limited"

// IdentityHeaders name the headers the gateway's plugin sets besides the user's id (Config.UserHeader); "" ignores one.
type IdentityHeaders struct {
	Login, Email, Client, Scopes, Groups string
	ResourceMetadata                     string // the URL of the resource's RFC 9728 metadata, for step-up challenges
}

// callerOf is the caller as the gateway vouched for them.
func (h *Handler) callerOf(r *http.Request) *policy.Caller {
	hd := h.cfg.Identity
	c := &policy.Caller{ID: h.userOf(r), Login: headerOf(r, hd.Login), Email: headerOf(r, hd.Email),
		ClientID: headerOf(r, hd.Client), Scopes: strings.Fields(headerOf(r, hd.Scopes))}
	for g := range strings.SplitSeq(headerOf(r, hd.Groups), ",") {
		if g = strings.TrimSpace(g); g != "" {
			c.Groups = append(c.Groups, g)
		}
	}
	return c
}

func headerOf(r *http.Request, name string) string {
	if name == "" {
		return ""
	}
	return r.Header.Get(name)
}

// authorize decides a request by the policy and answers it when it may not go on: a refusal, a step-up challenge or
// a rate limit. It reports whether the request may go on to the child.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, id json.RawMessage, method string, params map[string]json.RawMessage) bool {
	if h.cfg.Policy == nil {
		return true
	}
	p := h.cfg.Policy.Current()
	switch method {
	case "subscriptions/listen":
		return h.authorizeListen(w, r, p, id, params)
	case "completion/complete":
		return h.authorizeCompletion(w, r, p, id, params)
	}
	if !policy.Governs(method) {
		return true
	}
	c := h.callerOf(r)
	q := &policy.Request{Method: method, Arguments: params["arguments"]}
	if field := methodsWithName[method]; field == "name" {
		_ = json.Unmarshal(params["name"], &q.Name)
	} else {
		_ = json.Unmarshal(params["uri"], &q.URI)
	}
	if !h.decide(w, r, p, c, q, id) {
		return false
	}
	if _, retry := params["requestState"]; retry {
		return true // a multi round-trip request's retry carries on the call already counted
	}
	if limited, ok := p.Take(c, q); !ok {
		h.cfg.Metrics.PolicyLimited(limited.Rule)
		operationOf(r.Context()).Decide(rateLimited, limited.Rule)
		secs := int(math.Ceil(limited.RetryAfter.Seconds()))
		h.log.DebugContext(r.Context(), "policy rate limit", "rule", limited.Rule, "method", method, "user", c.ID, "retry_after", secs)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		rpcErrorData(w, http.StatusTooManyRequests, id, -32000,
			fmt.Sprintf("rate limit %q of this server's policy reached: try again in %d s", limited.Rule, secs),
			map[string]any{"rule": limited.Rule})
		return false
	}
	return true
}

// authorizeListen decides each resource a 2026-07-28 subscriptions/listen asks to follow, as a resources/subscribe.
func (h *Handler) authorizeListen(w http.ResponseWriter, r *http.Request, p *policy.Policy, id json.RawMessage, params map[string]json.RawMessage) bool {
	var asked struct {
		ResourceSubscriptions []string `json:"resourceSubscriptions"`
	}
	_ = json.Unmarshal(params["notifications"], &asked)
	c := h.callerOf(r)
	for _, uri := range asked.ResourceSubscriptions {
		if !h.decide(w, r, p, c, &policy.Request{Method: "resources/subscribe", URI: uri}, id) {
			return false
		}
	}
	return true
}

// authorizeCompletion decides a completion of a prompt's or a resource template's arguments as the use of that
// prompt or template: what a caller may not use, they may not explore either.
func (h *Handler) authorizeCompletion(w http.ResponseWriter, r *http.Request, p *policy.Policy, id json.RawMessage, params map[string]json.RawMessage) bool {
	var ref struct {
		Type string `json:"type"`
		Name string `json:"name"`
		URI  string `json:"uri"`
	}
	_ = json.Unmarshal(params["ref"], &ref)
	q := &policy.Request{Method: "prompts/get", Name: ref.Name}
	if ref.Type == "ref/resource" {
		q = &policy.Request{Method: "resources/read", URI: ref.URI}
	}
	return h.decide(w, r, p, h.callerOf(r), q, id)
}

// decide asks the policy, counts and logs the decision, and answers a request that may not go on.
func (h *Handler) decide(w http.ResponseWriter, r *http.Request, p *policy.Policy, c *policy.Caller, q *policy.Request, id json.RawMessage) bool {
	d := p.Decide(c, q)
	h.cfg.Metrics.PolicyDecision(d.Rule, string(d.Effect))
	operationOf(r.Context()).Decide(string(d.Effect), d.Rule)
	// Never the arguments, never a token: what was asked, by whom, and which rule answered.
	h.log.DebugContext(r.Context(), "policy decision", "effect", d.Effect, "rule", d.Rule, "method", q.Method,
		"name", q.Name, "uri", q.URI, "user", c.ID, "client", c.ClientID)
	what := describe(q)
	switch d.Effect {
	case policy.Allow:
		return true
	case policy.StepUp:
		needed := strings.Join(d.Scopes, " ")
		challenge := fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q`, strings.Join(policy.ChallengeScopes(c, d), " "))
		if prm := headerOf(r, h.cfg.Identity.ResourceMetadata); prm != "" {
			challenge += fmt.Sprintf(", resource_metadata=%q", prm)
		}
		challenge += fmt.Sprintf(`, error_description="policy rule %s needs the scope %s"`, d.Rule, needed)
		w.Header().Set("WWW-Authenticate", challenge)
		rpcErrorData(w, http.StatusForbidden, id, codeNotAllowed,
			fmt.Sprintf("%s needs the scope %s, which this token lacks (policy rule %q): authorize again with it", what, needed, d.Rule),
			map[string]any{"rule": d.Rule, "scopes": d.Scopes})
	default:
		rpcErrorData(w, http.StatusOK, id, codeNotAllowed,
			fmt.Sprintf("%s is not allowed for this user (policy rule %q)", what, d.Rule), map[string]any{"rule": d.Rule})
	}
	return false
}

func describe(q *policy.Request) string {
	switch q.Method {
	case "tools/call":
		return fmt.Sprintf("tool %q", q.Name)
	case "prompts/get":
		return fmt.Sprintf("prompt %q", q.Name)
	case "resources/subscribe", "resources/unsubscribe":
		return fmt.Sprintf("subscribing to resource %q", q.URI)
	}
	return fmt.Sprintf("resource %q", q.URI)
}

// listed says, for each list method, the member holding its items, the method that uses an item and the item's
// member that method names it by.
var listed = map[string]struct{ items, use, field string }{
	"tools/list":               {"tools", "tools/call", "name"},
	"prompts/list":             {"prompts", "prompts/get", "name"},
	"resources/list":           {"resources", "resources/read", "uri"},
	"resources/templates/list": {"resourceTemplates", "resources/read", "uriTemplate"},
}

// filters reports whether a method's result is filtered by the policy.
func (h *Handler) filters(method string) bool {
	_, ok := listed[method]
	return ok && h.cfg.Policy != nil
}

// filterResult keeps, in a list result, the items the caller may use now or after a step-up: an item no scope would
// allow is hidden. The rest of the result (nextCursor above all) is kept as it is, so pagination goes on page by page.
// A template is decided by its template text as the URI.
func (h *Handler) filterResult(r *http.Request, method string, result json.RawMessage) json.RawMessage {
	kind, ok := listed[method]
	if !ok || h.cfg.Policy == nil {
		return result
	}
	var res map[string]json.RawMessage
	var items []json.RawMessage
	if json.Unmarshal(result, &res) != nil || json.Unmarshal(res[kind.items], &items) != nil {
		return result
	}
	p, c := h.cfg.Policy.Current(), h.callerOf(r)
	kept := make([]json.RawMessage, 0, len(items))
	for _, item := range items {
		var named map[string]json.RawMessage
		var key string
		if json.Unmarshal(item, &named) != nil || json.Unmarshal(named[kind.field], &key) != nil {
			continue // an item the policy cannot name is not shown
		}
		q := &policy.Request{Method: kind.use}
		if kind.field == "name" {
			q.Name = key
		} else {
			q.URI = key
		}
		if p.Decide(c, q).Effect != policy.Deny {
			kept = append(kept, item)
		}
	}
	if len(kept) == len(items) {
		return result
	}
	res[kind.items], _ = json.Marshal(kept)
	out, err := json.Marshal(res)
	if err != nil {
		return result
	}
	return out
}

// filterResponse filters the result of a whole JSON-RPC response (the session path's).
func (h *Handler) filterResponse(r *http.Request, method string, raw []byte) []byte {
	if !h.filters(method) {
		return raw
	}
	var msg map[string]json.RawMessage
	if json.Unmarshal(raw, &msg) != nil || msg["result"] == nil {
		return raw
	}
	msg["result"] = h.filterResult(r, method, msg["result"])
	out, err := json.Marshal(msg)
	if err != nil {
		return raw
	}
	return out
}
