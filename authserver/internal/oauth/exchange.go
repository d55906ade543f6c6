package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// Token exchange (RFC 8693): an HTTP backend behind the gateway that holds a user's access token gets, for that
// user, a token for another audience the operator lists (an API it calls), so it never passes the user's token on.
// The exchanged token names the audience, carries the user, is bounded by the subject token's grant (no wider scope,
// no later expiry, revoked with it), and only the clients the operator names for that audience may ask.

// TokenExchangeGrantType is RFC 8693's grant type at /token.
const TokenExchangeGrantType = "urn:ietf:params:oauth:grant-type:token-exchange"

// Token types of RFC 8693 §3 this server takes as subject and issues.
const (
	tokenTypeAccess = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeJWT    = "urn:ietf:params:oauth:token-type:jwt"
)

// ParseExchangePolicy reads --token-exchange: entries <audience>=<client id> <client id>... (or * for any
// authenticated client), separated by ';' or new lines. An audience is an absolute http(s) URL.
func ParseExchangePolicy(raw string) (map[string][]string, error) {
	policy := map[string][]string{}
	for _, e := range strings.FieldsFunc(raw, func(r rune) bool { return r == ';' || r == '\n' }) {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		aud, clients, ok := strings.Cut(e, "=")
		aud = strings.TrimSpace(aud)
		u, err := url.Parse(aud)
		if !ok || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
			return nil, fmt.Errorf("entry %q: want <audience URL>=<client id> ... (or *), e.g. https://api.example.com=backend-a", e)
		}
		ids := strings.FieldsFunc(clients, func(r rune) bool { return r == ' ' || r == ',' })
		if len(ids) == 0 {
			return nil, fmt.Errorf("audience %s: name the clients that may exchange for it, or *", aud)
		}
		if _, dup := policy[aud]; dup {
			return nil, fmt.Errorf("audience %s is listed twice", aud)
		}
		policy[aud] = ids
	}
	return policy, nil
}

// tokenExchange is the token-exchange grant for client c.
func (s *Server) tokenExchange(ctx context.Context, f url.Values, c *store.Client) (*issued, error) {
	if len(s.cfg.Exchange) == 0 {
		return nil, badRequest("unsupported_grant_type", "token exchange is not enabled on this server (--token-exchange)")
	}
	if c.TokenEndpointAuth == "" || c.TokenEndpointAuth == "none" {
		// A public client proves nothing but its id, which anyone can send.
		return nil, badRequest("unauthorized_client", "token exchange needs a client that authenticates (a client secret or private_key_jwt)")
	}
	subject, subjectType := f.Get("subject_token"), f.Get("subject_token_type")
	if subject == "" || (subjectType != tokenTypeAccess && subjectType != tokenTypeJWT) {
		return nil, badRequest("invalid_request", "subject_token and subject_token_type ("+tokenTypeAccess+") are required")
	}
	if f.Get("actor_token") != "" {
		return nil, badRequest("invalid_request", "actor_token is not supported: the exchanged token acts for the subject's user")
	}
	if t := f.Get("requested_token_type"); t != "" && t != tokenTypeAccess && t != tokenTypeJWT {
		return nil, badRequest("invalid_request", "only access tokens are issued (requested_token_type "+tokenTypeAccess+")")
	}
	// The audience: one value, of audience or resource (RFC 8693 §2.1 allows either).
	targets := append(f["audience"], f["resource"]...)
	if len(targets) != 1 {
		return nil, badRequest("invalid_target", "name exactly one audience (audience or resource) to exchange for")
	}
	aud := targets[0]
	allowed, listed := s.cfg.Exchange[aud]
	if !listed {
		return nil, badRequest("invalid_target", "this server issues no tokens for that audience")
	}
	if !slices.Contains(allowed, "*") && !slices.Contains(allowed, c.ID) {
		return nil, badRequest("unauthorized_client", "this client may not exchange tokens for that audience")
	}
	claims, err := s.parseAccess(ctx, subject)
	if err != nil {
		return nil, badRequest("invalid_grant", "the subject token is not a valid access token of this server")
	}
	revoked, err := s.store.IsRevoked(ctx, claims.ID)
	if err != nil {
		return nil, storeFailure("read revocations", err)
	}
	rec, err := s.store.GetAccess(ctx, claims.ID)
	if errors.Is(err, store.ErrNotFound) || revoked {
		return nil, badRequest("invalid_grant", "the subject token is revoked or expired")
	}
	if err != nil {
		return nil, storeFailure("read the subject token", err)
	}
	scope := claims.Scope
	if want := f.Get("scope"); want != "" {
		if !covers(claims.Scope, want) {
			return nil, badRequest("invalid_scope", "the subject token grants only: "+claims.Scope)
		}
		scope = strings.Join(strings.Fields(want), " ")
	}
	now := s.now()
	exp := now.Add(s.cfg.AccessTTL)
	if claims.ExpiresAt.Before(exp) {
		exp = claims.ExpiresAt.Time // never past the subject token
	}
	user := store.User{ID: claims.Subject, Login: claims.Username, Name: claims.Name, Email: claims.Email, Groups: claims.Groups}
	access, jti, err := s.signAccess(ctx, c.ID, user, scope, aud, now, exp)
	if err != nil {
		return nil, storeFailure("sign access token", err)
	}
	// In the subject's family: revoking its grant (or its user, or its client) revokes this token too.
	if err := s.store.RecordAccess(ctx, &store.AccessToken{JTI: jti, FamilyID: rec.FamilyID, ClientID: c.ID, UserID: user.ID,
		Scope: scope, Resource: aud, IssuedAt: now, ExpiresAt: exp}); err != nil {
		return nil, storeFailure("record access token", err)
	}
	s.record(ctx, withUser(audit.Event{Name: eventTokenIssued, Outcome: audit.OutcomeSuccess, ClientID: c.ID,
		GrantType: TokenExchangeGrantType, Scope: scope, Resource: aud, TokenID: jti,
		Reason: "exchanged for a token of client " + claims.ClientID}, &user))
	return &issued{at: now, grant: "token_exchange", body: map[string]any{"access_token": access,
		"issued_token_type": tokenTypeAccess, "token_type": "Bearer", "expires_in": int(exp.Sub(now).Seconds()), "scope": scope}}, nil
}
