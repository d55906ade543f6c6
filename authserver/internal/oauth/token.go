package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/grant"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/successor"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// token is POST /token (RFC 6749 §3.2, OAuth 2.1 §3.2.3): the client is authenticated (clientForm), its grant
// checked and the tokens issued (tokenGrant, which returns them or an error value), and then this one place
// answers, counting the issue and noting the client's use.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	c, err := s.clientForm(w, r)
	var t *issued
	if err == nil {
		t, err = s.tokenGrant(r.Context(), r.PostForm, c)
	}
	if err != nil {
		s.record(r.Context(), audit.Event{Name: eventTokenRefused, Outcome: audit.OutcomeDenied, Reason: refusal(err),
			ClientID: clientID(c, r), GrantType: r.PostForm.Get("grant_type")})
		s.answerError(w, r, err)
		return
	}
	if t.grant != "" {
		s.cfg.Metrics.Issued(t.grant)
	}
	s.recordUse(r.Context(), c, t.at)
	writeJSON(w, http.StatusOK, t.body)
}

// tokenGrant runs the grant the form names for client c.
func (s *Server) tokenGrant(ctx context.Context, f url.Values, c *store.Client) (*issued, error) {
	switch gt := f.Get("grant_type"); gt {
	case "authorization_code":
		return s.exchangeCode(ctx, f, c)
	case "refresh_token":
		if !slices.Contains(c.GrantTypes, "refresh_token") {
			return nil, badRequest("unauthorized_client", "this client did not register the refresh_token grant")
		}
		return s.refresh(ctx, f, c)
	case DeviceGrantType:
		return s.deviceToken(ctx, f, c)
	case TokenExchangeGrantType:
		return s.tokenExchange(ctx, f, c)
	case "":
		return nil, badRequest("invalid_request", "grant_type is required")
	default:
		return nil, badRequest("unsupported_grant_type", "grant_type "+gt+" is not supported")
	}
}

// issued is what a grant obtained: the token response, when, and the grant's name for the metrics (empty when
// nothing new was issued: a refresh token presented again within the reuse window gets its successor's response).
type issued struct {
	body  map[string]any
	at    time.Time
	grant string
}

// grantOf is what a grant hands to issueTokens: the grant's name (for the metrics), its family, whose tokens and for
// what; prev is the refresh token presented, to rotate (nil: the grant starts), and presented its value, under
// which the response is sealed for a repeat within the reuse window.
type grantOf struct {
	name            string
	family          string
	user            store.User
	scope, resource string
	prev            *store.RefreshToken
	presented       string
}

func (s *Server) exchangeCode(ctx context.Context, f url.Values, c *store.Client) (*issued, error) {
	code, verifier := f.Get("code"), f.Get("code_verifier")
	if code == "" || verifier == "" {
		return nil, badRequest("invalid_request", "code and code_verifier are required")
	}
	rec, err := s.store.RedeemCode(ctx, store.HashSecret(code))
	switch {
	case errors.Is(err, store.ErrReused):
		// OAuth 2.1 §4.1.3: a code used twice may have been stolen; revoke what its first use issued.
		s.log.WarnContext(ctx, "authorization code reused; revoking its grant", "client_id", rec.ClientID)
		s.cfg.Metrics.Revoked("code_reused")
		if err := s.store.RevokeFamily(ctx, rec.FamilyID); err != nil {
			return nil, storeFailure("revoke family", err)
		}
		s.record(ctx, withUser(audit.Event{Name: eventGrantRevoked, Outcome: audit.OutcomeSuccess,
			Reason: "authorization code reused", ClientID: rec.ClientID, Scope: rec.Scope, Resource: rec.Resource}, &rec.User))
		return nil, badRequest("invalid_grant", "the authorization code was already used; its tokens are revoked")
	case errors.Is(err, store.ErrNotFound):
		return nil, badRequest("invalid_grant", "the authorization code is invalid or expired")
	case err != nil:
		return nil, storeFailure("redeem code", err)
	}
	if rec.ClientID != c.ID {
		return nil, badRequest("invalid_grant", "the authorization code was issued to another client")
	}
	if f.Get("redirect_uri") != "" && f.Get("redirect_uri") != rec.RedirectURI {
		return nil, badRequest("invalid_grant", "redirect_uri differs from the authorization request's")
	}
	if !pkceMatches(verifier, rec.CodeChallenge) {
		return nil, badRequest("invalid_grant", "code_verifier does not match the code_challenge (PKCE)")
	}
	if err := s.sameResource(f, rec.Resource); err != nil {
		return nil, err
	}
	return s.issueTokens(ctx, c, grantOf{name: "authorization_code", family: rec.FamilyID, user: rec.User,
		scope: rec.Scope, resource: rec.Resource})
}

// sameResource checks the resource a token request names, if any, against the one authorized (RFC 8707 §2.2).
func (s *Server) sameResource(f url.Values, authorized string) error {
	if res := f["resource"]; len(res) > 0 {
		if got, problem := s.resolveResource(res); problem != "" || got != authorized {
			return badRequest("invalid_target", "resource differs from the one authorized")
		}
	}
	return nil
}

// pkceMatches checks an S256 verifier (RFC 7636 §4.6): 43-128 unreserved characters whose SHA-256 is the challenge.
func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 ||
		strings.Trim(verifier, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") != "" {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

func (s *Server) refresh(ctx context.Context, f url.Values, c *store.Client) (*issued, error) {
	presented := f.Get("refresh_token")
	if presented == "" {
		return nil, badRequest("invalid_request", "refresh_token is required")
	}
	old, err := s.store.GetRefresh(ctx, store.HashSecret(presented))
	if errors.Is(err, store.ErrReused) {
		return s.reuse(ctx, f, c, presented, old)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, badRequest("invalid_grant", "the refresh token is invalid, expired or revoked")
	}
	if err != nil {
		return nil, storeFailure("read refresh token", err)
	}
	if old.ClientID != c.ID {
		return nil, badRequest("invalid_grant", "the refresh token was issued to another client")
	}
	if err := s.stillAllowed(ctx, old); err != nil {
		return nil, err
	}
	// A grant ends at its maximum age, counted from its login, and may refresh only so often (package grant).
	switch wait, err := s.cfg.Grants.Check(old, s.now()); {
	case errors.Is(err, grant.ErrEnded):
		return nil, s.grantEnded()
	case errors.Is(err, grant.ErrTooFrequent):
		s.log.WarnContext(ctx, "refresh refused: the grant refreshes too often", "client_id", c.ID)
		secs := int(wait.Round(time.Second).Seconds())
		return nil, &oauthErr{status: http.StatusTooManyRequests, code: "slow_down", retryAfter: strconv.Itoa(secs),
			desc: fmt.Sprintf("this grant refreshed %d times within %s; the refresh token is still valid: retry in %d s",
				s.cfg.Grants.RefreshLimit, s.cfg.Grants.Window, secs)}
	}
	// A refresh may narrow the grant (RFC 6749 §6); scopes it names that were not granted are ignored, never added.
	scope := narrowScope(old.Scope, f.Get("scope"))
	if err := s.sameResource(f, old.Resource); err != nil {
		return nil, err
	}
	t, err := s.issueTokens(ctx, c, grantOf{name: "refresh_token", family: old.FamilyID, user: old.User, scope: scope,
		resource: old.Resource, prev: old, presented: presented})
	if lost, ok := errors.AsType[*rotatedMeanwhile](err); ok {
		return s.reuse(ctx, f, c, presented, lost.old) // another use of the same token rotated it first
	}
	return t, err
}

// stillAllowed checks the allow rules, which may have changed since login: a user no longer allowed loses the
// whole grant.
func (s *Server) stillAllowed(ctx context.Context, old *store.RefreshToken) error {
	if ok, reason := s.login.MayRefresh(old.User); !ok {
		s.log.InfoContext(ctx, "refresh refused: user no longer allowed", "login", old.User.Login, "reason", reason)
		if err := s.store.RevokeFamily(ctx, old.FamilyID); err != nil {
			return storeFailure("revoke family", err)
		}
		s.record(ctx, withUser(audit.Event{Name: eventGrantRevoked, Outcome: audit.OutcomeSuccess,
			Reason: "user no longer allowed: " + reason, ClientID: old.ClientID, Scope: old.Scope, Resource: old.Resource}, &old.User))
		return badRequest("invalid_grant", reason)
	}
	return nil
}

// grantEnded is the answer to a refresh of a grant past its maximum age.
func (s *Server) grantEnded() error {
	return badRequest("invalid_grant", "this grant reached its maximum age, "+
		s.cfg.Grants.MaxAge.String()+" after the login that started it: authorize again")
}

// rotatedMeanwhile: the refresh token being rotated was rotated by another request since it was read.
type rotatedMeanwhile struct{ old *store.RefreshToken }

func (e *rotatedMeanwhile) Error() string { return "the refresh token was rotated meanwhile" }

// issueTokens signs an access token, records it, and stores a new refresh token (rotating g.prev, if any). Nothing
// reaches the client before its state is stored.
func (s *Server) issueTokens(ctx context.Context, c *store.Client, g grantOf) (*issued, error) {
	now := s.now()
	gs := s.cfg.Grants.Next(g.prev, now) // the grant's end and refresh count, carried by the next refresh token
	exp := gs.Clamp(now.Add(s.cfg.AccessTTL))
	access, jti, err := s.signAccess(ctx, c.ID, g.user, g.scope, g.resource, now, exp)
	if err != nil {
		return nil, storeFailure("sign access token", err)
	}
	resp := map[string]any{"access_token": access, "token_type": "Bearer",
		"expires_in": int(exp.Sub(now).Seconds()), "scope": g.scope}
	if slices.Contains(c.GrantTypes, "refresh_token") {
		refresh := randomToken(32)
		next := &store.RefreshToken{Hash: store.HashSecret(refresh), FamilyID: g.family, ClientID: c.ID, User: g.user,
			Scope: g.scope, Resource: g.resource, IssuedAt: now, ExpiresAt: gs.Clamp(now.Add(s.cfg.RefreshTTL)),
			GrantExpiresAt: gs.End, RefreshLoad: gs.Load, RefreshLoadAt: gs.LoadAt}
		if g.prev == nil {
			err = s.store.CreateRefresh(ctx, next)
		} else {
			var sealed store.Sealed
			if s.cfg.RefreshReuseWindow > 0 {
				sealed.ExpiresAt = now.Add(s.cfg.RefreshReuseWindow)
				sealed.Data, err = successor.Seal(g.presented, g.prev.Hash, successor.Response{RefreshToken: refresh,
					AccessToken: access, AccessExpiresAt: exp, Scope: g.scope})
				if err != nil {
					return nil, fmt.Errorf("seal the refresh response: %w", err)
				}
			}
			var old *store.RefreshToken
			old, err = s.store.RotateRefresh(ctx, g.prev.Hash, next, sealed)
			if errors.Is(err, store.ErrReused) {
				return nil, &rotatedMeanwhile{old}
			}
			if errors.Is(err, store.ErrNotFound) {
				return nil, badRequest("invalid_grant", "the refresh token is invalid, expired or revoked")
			}
		}
		if err != nil {
			return nil, storeFailure("store refresh token", err)
		}
		resp["refresh_token"] = refresh
	}
	err = s.store.RecordAccess(ctx, &store.AccessToken{JTI: jti, FamilyID: g.family, ClientID: c.ID, UserID: g.user.ID,
		Scope: g.scope, Resource: g.resource, IssuedAt: now, ExpiresAt: exp})
	if err != nil {
		return nil, storeFailure("record access token", err)
	}
	name := eventTokenIssued
	if g.prev != nil {
		name = eventTokenRefreshed
	}
	s.record(ctx, withUser(audit.Event{Name: name, Outcome: audit.OutcomeSuccess, ClientID: c.ID, GrantType: g.name,
		Scope: g.scope, Resource: g.resource, TokenID: jti}, &g.user))
	return &issued{body: resp, at: now, grant: g.name}, nil
}

// recordUse notes that a registered client obtained tokens, which keeps its registration alive (clientlife). A
// failure costs nothing but an earlier expiry, so it is logged and the tokens are still returned.
func (s *Server) recordUse(ctx context.Context, c *store.Client, now time.Time) {
	if clientmeta.IsURL(c.ID) {
		return // a metadata-document client is not stored
	}
	exp, write := s.cfg.Clients.AfterUse(c, now)
	if !write {
		return
	}
	if err := s.store.TouchClient(ctx, c.ID, now, exp); err != nil {
		s.log.WarnContext(ctx, "cannot record the client's use", "client_id", c.ID, "err", err)
	}
}
