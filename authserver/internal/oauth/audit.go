package oauth

import (
	"context"
	"errors"
	"net/http"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// The authserver's audit events (docs/observability.md). Each names what happened; none carries a token, a code, a
// secret or an assertion, only ids (a client's, a user's, an access token's jti) and the grant's scope and resource.
const (
	eventLogin          = "login"
	eventConsent        = "consent"
	eventTokenIssued    = "token.issued"    // a grant's first tokens: authorization_code, device_code
	eventTokenRefreshed = "token.refreshed" // a refresh token rotated (or answered again within the reuse window)
	eventTokenRefused   = "token.refused"   // a token request refused
	eventTokenRevoked   = "token.revoked"   // /revoke: an access token, or a refresh token's whole grant
	eventGrantRevoked   = "grant.revoked"   // a grant revoked by the server: a code or refresh token replayed, a user no longer allowed
	eventClientRegister = "client.registered"
	eventClientUpdate   = "client.updated"
	eventClientDelete   = "client.deleted"
	eventConnCreated    = "connection.created" // an account connected at an upstream (never its tokens)
	eventConnDeleted    = "connection.deleted" // a connected account deleted by its user
)

// record writes an audit event (Config.Audit; nil: none).
func (s *Server) record(ctx context.Context, e audit.Event) {
	s.cfg.Audit.Record(ctx, e)
}

// withUser fills the event's user fields from u (nil: none).
func withUser(e audit.Event, u *store.User) audit.Event {
	if u != nil {
		e.UserID, e.UserLogin = u.ID, u.Login
		if e.Provider == "" {
			e.Provider = u.Provider
		}
	}
	return e
}

// refusal is the audit reason of an error answer: its OAuth code and description, which the server writes (naming a
// parameter or a grant type at most, never a token's or a code's value); anything else is a server failure.
func refusal(err error) string {
	if oe, ok := errors.AsType[*oauthErr](err); ok {
		return oe.code + ": " + oe.desc
	}
	return "server_error"
}

// clientID is the authenticated client's id, or the one a refused request claimed.
func clientID(c *store.Client, r *http.Request) string {
	if c != nil {
		return c.ID
	}
	return r.PostForm.Get("client_id")
}

// consentEvent is a user's decision on an authorization request (a client's, or a device's), with the scopes and
// resource it was for.
func consentEvent(ar *store.AuthRequest, outcome, reason string) audit.Event {
	return withUser(audit.Event{Name: eventConsent, Outcome: outcome, Reason: reason, ClientID: ar.ClientID,
		Scope: ar.Scope, Resource: ar.Resource}, ar.User)
}
