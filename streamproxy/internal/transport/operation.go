package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/tracing"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/jsonobj"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/policy"
)

// An operation is one MCP request as the traces and the audit trail see it, on either path: a span named after
// its method and target (OpenTelemetry's MCP conventions), and, for the methods that do something (audited) and for
// every request the policy refused, one audit event with the policy's decision and the outcome, read from the
// answer the client got.

// audited are the methods that act for a user: each gets an audit event. The rest (initialize, lists, pings) only
// get a span.
var audited = []string{"tools/call", "resources/read", "prompts/get", "resources/subscribe", "resources/unsubscribe",
	"subscriptions/listen"}

var tracer = tracing.Tracer("streamproxy")

type operation struct {
	h       *Handler
	audited bool   // its event is recorded whatever the decision; otherwise only a refusal's
	name    string // the span's name
	method  string // the MCP method ("" for a client's answer)
	start   time.Time
	id      json.RawMessage
	span    trace.Span
	child   trace.Span   // the call to the child, once started (childSpan)
	event   *audit.Event // nil: the audit trail is off, or this is no request
	w       *answerWatcher
}

// The spans' start options, made once: an option passed to Start is boxed anew at each call.
var (
	serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// begin starts the operation of msg; it returns the writer and request the paths use instead of w and r.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request, msg incoming, bodySize int) (*operation, http.ResponseWriter, *http.Request) {
	target, targetKey := operationTarget(msg)
	name := msg.Method
	if name == "" {
		name = "response" // a client's answer to a server's request (sampling, elicitation, roots)
	}
	if target != "" && targetKey != "mcp.resource.uri" {
		name += " " + target // a URI would make too many span names; it stays an attribute
	}
	// Attributes are built only for a span that records them: with tracing off (or this request not sampled) the
	// span only carries on the trace context it continues (the edge's, or the one in _meta: parentOf).
	ctx, opts := parentOf(r.Context(), msg.meta)
	ctx, span := tracer.Start(ctx, name, opts...)
	op := &operation{h: h, name: name, method: msg.Method, start: time.Now(), id: msg.ID, span: span}
	if span.IsRecording() {
		span.SetAttributes(h.spanAttributes(r, msg, target, targetKey)...)
	}
	ctx = context.WithValue(ctx, operationKey{}, op)
	if h.cfg.Audit != nil && msg.ID != nil && msg.Method != "" {
		op.audited = slices.Contains(audited, msg.Method)
		op.event = &audit.Event{Name: "mcp." + msg.Method, Server: h.cfg.ServerName, Protocol: protocolOf(r, msg),
			Method: msg.Method, Target: target, RPCID: string(msg.ID), UserID: h.userOf(r),
			UserLogin: headerOf(r, h.cfg.Identity.Login), ClientID: headerOf(r, h.cfg.Identity.Client),
			BytesIn: int64(bodySize)}
		if msg.Method == "tools/call" && h.argumentsLogged(target) {
			var args map[string]any
			if json.Unmarshal(msg.params["arguments"], &args) == nil {
				op.event.Arguments = audit.Redact(args)
			}
		}
	}
	if op.event == nil && !span.IsRecording() {
		return op, w, r.WithContext(ctx)
	}
	op.w = &answerWatcher{ResponseWriter: w, status: http.StatusOK}
	return op, op.w, r.WithContext(ctx)
}

// spanAttributes are the attributes of an operation's span.
func (h *Handler) spanAttributes(r *http.Request, msg incoming, target, targetKey string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs, attribute.String("mcp.method.name", msg.Method))
	if target != "" {
		attrs = append(attrs, attribute.String(targetKey, target))
	}
	if msg.Method == "tools/call" {
		attrs = append(attrs, attribute.String("gen_ai.operation.name", "execute_tool"))
	}
	if msg.ID != nil {
		attrs = append(attrs, attribute.String("jsonrpc.request.id", string(msg.ID)))
	}
	if v := protocolOf(r, msg); v != "" {
		attrs = append(attrs, attribute.String("mcp.protocol.version", v))
	}
	if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
		attrs = append(attrs, attribute.String("mcp.session.id", sid))
	}
	if u := h.userOf(r); u != "" {
		attrs = append(attrs, attribute.String("user.id", u))
	}
	return attrs
}

// childSpan starts the span of the operation's call to the MCP server process, over its stdin and stdout (the proxy
// is the child's MCP client there). The caller ends it once the child has answered or the call was given up. It
// carries only what OpenTelemetry's MCP conventions require of a client span, mcp.method.name: its parent, the
// operation's span, has the rest, and each attribute is a good part of a span's cost (recorded, deduplicated,
// encoded for export).
func childSpan(ctx context.Context) trace.Span {
	op := operationOf(ctx)
	if op == nil || !op.span.IsRecording() {
		return trace.SpanFromContext(context.Background()) // a span that records nothing
	}
	_, op.child = tracer.Start(ctx, op.name, clientSpan...)
	if op.method != "" {
		op.child.SetAttributes(attribute.String("mcp.method.name", op.method))
	}
	return op.child
}

type operationKey struct{}

// operationOf returns the operation of a request's context (nil outside one), for what decides on it (the policy).
func operationOf(ctx context.Context) *operation {
	op, _ := ctx.Value(operationKey{}).(*operation)
	return op
}

// argumentsLogged reports whether the operator opted in to logging tool's arguments (--audit-arguments).
func (h *Handler) argumentsLogged(tool string) bool {
	return slices.Contains(h.cfg.AuditArguments, "*") || slices.Contains(h.cfg.AuditArguments, tool)
}

// Decide records the policy's decision on the operation: its effect (or rate_limited) and the rule that made it.
// The audit event's decision and rule stay empty when no policy decides.
func (op *operation) Decide(effect, rule string) {
	if op == nil {
		return
	}
	op.span.SetAttributes(attribute.String("mcp.policy.decision", effect), attribute.String("mcp.policy.rule", rule))
	if op.event != nil {
		op.event.Decision, op.event.Rule = effect, rule
	}
}

// end ends the span and records the event, with the outcome of the answer the client got.
func (op *operation) end(ctx context.Context) {
	defer op.span.End()
	if op.w == nil {
		return
	}
	record := op.event != nil && (op.audited || (op.event.Decision != "" && op.event.Decision != string(policy.Allow)))
	if !record && !op.span.IsRecording() {
		return // an unaudited request allowed, untraced: nothing reads its outcome
	}
	outcome, code := op.w.outcome(op.id)
	if outcome == "" {
		outcome = audit.OutcomeFailure // answered without a JSON-RPC response (a refusal in plain HTTP)
		if ctx.Err() != nil {
			outcome = audit.OutcomeCancelled
		}
	}
	switch outcome {
	case audit.OutcomeRPCError, audit.OutcomeTimedOut:
		op.span.SetAttributes(attribute.String("error.type", strconv.Itoa(code)), attribute.Int("rpc.response.status_code", code))
		op.span.SetStatus(codes.Error, "JSON-RPC error "+strconv.Itoa(code))
	case audit.OutcomeToolError:
		op.span.SetAttributes(attribute.String("error.type", "tool_error"))
		op.span.SetStatus(codes.Error, "tool error")
	case audit.OutcomeFailure, audit.OutcomeCancelled:
		op.span.SetAttributes(attribute.String("error.type", outcome))
	}
	if !record {
		return
	}
	op.event.Outcome, op.event.ErrorCode = outcome, code
	op.event.DurationMS = float64(time.Since(op.start).Microseconds()) / 1000
	op.event.BytesOut = op.w.bytes
	op.h.cfg.Audit.Record(ctx, *op.event)
}

// operationTarget is what msg acts on, and its attribute's name: a tool's or a prompt's name, or a resource's URI.
func operationTarget(msg incoming) (target, key string) {
	var member string
	switch msg.Method {
	case "tools/call":
		member, key = "name", "gen_ai.tool.name"
	case "prompts/get":
		member, key = "name", "gen_ai.prompt.name"
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		member, key = "uri", "mcp.resource.uri"
	default:
		return "", ""
	}
	_ = json.Unmarshal(msg.params[member], &target)
	return target, key
}

// protocolOf is the revision the client speaks: its header, or the stateless path's request metadata.
func protocolOf(r *http.Request, msg incoming) string {
	if v := r.Header.Get("MCP-Protocol-Version"); v != "" {
		return v
	}
	var v string
	_ = json.Unmarshal(msg.meta[metaProtocolVersion], &v)
	return v
}

// timedOutMessage is the error message of a request the proxy gave up on (--request-timeout).
const timedOutMessage = "request timed out in the proxy"

var quotedTimedOutMessage = strconv.Quote(timedOutMessage) // as JSON writes it (it is ASCII)

// answerWatcher passes an answer through and keeps what the operation's outcome needs: the bytes written and the
// last JSON-RPC message, a JSON body or an SSE event's data (each event is one write, sseWriter.event).
type answerWatcher struct {
	http.ResponseWriter
	status int
	bytes  int64
	last   []byte
}

func (a *answerWatcher) WriteHeader(status int) {
	a.status = status
	a.ResponseWriter.WriteHeader(status)
}

func (a *answerWatcher) Write(p []byte) (int, error) {
	a.bytes += int64(len(p))
	switch {
	case len(p) > 0 && p[0] == '{':
		a.last = append(a.last[:0], p...)
	case bytes.Contains(p, []byte("data: ")):
		_, data, _ := bytes.Cut(p, []byte("data: "))
		data, _, _ = bytes.Cut(data, []byte("\n"))
		a.last = append(a.last[:0], data...)
	}
	return a.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's Flush and deadlines.
func (a *answerWatcher) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// outcome reads the answer to the request id: its outcome, and a JSON-RPC error's code. "" when no response to it
// was written. Only the members it needs are read: a result's content is never decoded.
func (a *answerWatcher) outcome(id json.RawMessage) (string, int) {
	var (
		respID, result, rpcError []byte
		code                     int
		timedOut, isError        bool
	)
	err := jsonobj.Each(a.last, func(name, value []byte) error {
		switch {
		case string(name) == "id":
			respID = value
		case string(value) == "null": // as if absent
		case string(name) == "result":
			result = value
		case string(name) == "error":
			rpcError = value
		}
		return nil
	})
	if len(a.last) == 0 || err != nil || (id != nil && !bytes.Equal(respID, id)) {
		return "", 0
	}
	if rpcError != nil {
		err = jsonobj.Each(rpcError, func(name, value []byte) error {
			switch string(name) {
			case "code":
				return json.Unmarshal(value, &code)
			case "message":
				timedOut = string(value) == quotedTimedOutMessage
			}
			return nil
		})
		if err != nil {
			return "", 0
		}
	}
	if result != nil && result[0] == '{' {
		_ = jsonobj.Each(result, func(name, value []byte) error {
			if string(name) == "isError" {
				isError = string(value) == "true"
			}
			return nil
		})
	}
	switch {
	case rpcError != nil && timedOut:
		return audit.OutcomeTimedOut, code
	case rpcError != nil:
		return audit.OutcomeRPCError, code
	case isError:
		return audit.OutcomeToolError, 0
	}
	return audit.OutcomeResult, 0
}
