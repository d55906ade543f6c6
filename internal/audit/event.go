// Package audit writes the gateway's audit trail: one JSON object a line per thing a user, a client or an operator
// did, in a versioned schema (docs/observability.md). Writing never blocks the caller: events wait in a bounded
// buffer, and an event the buffer has no room for is counted and logged, never dropped silently. No token, code,
// secret or assertion belongs in an event; the fields below have no room for one, and arguments an operator opts in
// to are redacted by name (Redact).
package audit

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-oauth-gateway/gateway/internal/observe"
)

// Version is the schema's version, the "v" of every event. Fields may be added within a version; a field that
// changes meaning or goes away takes a new version.
const Version = 1

// Outcomes shared by both services. streamproxy adds the outcomes of an MCP call (OutcomeToolError and the rest).
const (
	OutcomeSuccess = "success" // it happened
	OutcomeFailure = "failure" // it was attempted and failed (Reason says why)
	OutcomeDenied  = "denied"  // a person or a rule said no (Reason or Rule says which)
)

// The outcomes of an MCP operation in streamproxy.
const (
	OutcomeResult    = "result"     // the server answered with a result
	OutcomeToolError = "tool_error" // a tools/call result with isError
	OutcomeRPCError  = "rpc_error"  // a JSON-RPC error (ErrorCode)
	OutcomeCancelled = "cancelled"  // the client went away or cancelled
	OutcomeTimedOut  = "timed_out"  // no answer in time
	OutcomeAccepted  = "accepted"   // the user accepted a server's elicitation (OutcomeCancelled: dismissed it)
	OutcomeDeclined  = "declined"   // the user declined it
	// A server's question to the client that got no answer: the operation it belonged to ended without one, or
	// the session did.
	OutcomeUnanswered = "unanswered"
)

// Event is one line of the audit trail. Every field but the first four is optional and omitted when empty; which
// ones an event carries depends on its Name (docs/observability.md lists them).
type Event struct {
	Version   int       `json:"v"`
	Time      time.Time `json:"time"`
	Service   string    `json:"service"` // authserver or streamproxy
	Name      string    `json:"event"`   // e.g. login, token.issued, mcp.tools/call
	Outcome   string    `json:"outcome,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	RequestID string    `json:"request_id,omitempty"` // X-Request-Id
	TraceID   string    `json:"trace_id,omitempty"`   // the W3C trace id, when the call is traced

	UserID    string `json:"user_id,omitempty"`
	UserLogin string `json:"user_login,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	// ClientName is the name a client registered with (client.registered, client.updated).
	ClientName string `json:"client_name,omitempty"`

	// The authserver's events.
	Provider  string `json:"provider,omitempty"`   // the identity provider a user logged in with
	Scope     string `json:"scope,omitempty"`      // space separated, as in a token
	Resource  string `json:"resource,omitempty"`   // the protected resource a grant is for
	GrantType string `json:"grant_type,omitempty"` // the token request's grant_type
	TokenID   string `json:"jti,omitempty"`        // an access token's jti (public: the revocation feed lists it)
	Command   string `json:"command,omitempty"`    // an admin command
	Via       string `json:"via,omitempty"`        // how the admin command came: socket or cli
	KeyID     string `json:"kid,omitempty"`        // a signing key's id
	Upstream  string `json:"upstream,omitempty"`   // a connected account's upstream (connection.created, connection.deleted)
	Count     int    `json:"count,omitempty"`      // how many things a command touched (clients purged, ...)

	// streamproxy's events.
	Server     string         `json:"server,omitempty"`     // the MCP server (its route name)
	Protocol   string         `json:"protocol,omitempty"`   // the MCP protocol revision the client speaks
	Method     string         `json:"method,omitempty"`     // the JSON-RPC method
	Target     string         `json:"target,omitempty"`     // the tool's or prompt's name, or the resource's URI
	RPCID      string         `json:"rpc_id,omitempty"`     // the JSON-RPC id, as JSON
	Decision   string         `json:"decision,omitempty"`   // the policy's effect (allow or deny)
	Rule       string         `json:"rule,omitempty"`       // the rule that made the decision
	ErrorCode  int            `json:"error_code,omitempty"` // a JSON-RPC error's code
	DurationMS float64        `json:"duration_ms,omitempty"`
	BytesIn    int64          `json:"bytes_in,omitempty"`  // from the client
	BytesOut   int64          `json:"bytes_out,omitempty"` // to the client
	Arguments  map[string]any `json:"arguments,omitempty"` // only for tools the operator opted in, redacted
}

// fill stamps the fields the logger owns and those the request's context carries.
func (e *Event) fill(ctx context.Context, service string, now time.Time) {
	e.Version, e.Service = Version, service
	if e.Time.IsZero() {
		e.Time = now.UTC()
	}
	if e.RequestID == "" {
		e.RequestID = observe.RequestID(ctx)
	}
	if sc := trace.SpanContextFromContext(ctx); e.TraceID == "" && sc.HasTraceID() {
		e.TraceID = sc.TraceID().String()
	}
}
