package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/grant"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// token is POST /token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	c := s.clientForm(w, r)
	if c == nil {
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "authorization_code":
		s.exchangeCode(w, r, c)
	case "refresh_token":
		if !slices.Contains(c.GrantTypes, "refresh_token") {
			oauthError(w, http.StatusBadRequest, "unauthorized_client", "this client did not register the refresh_token grant")
			return
		}
		s.refresh(w, r, c)
	case DeviceGrantType:
		s.deviceToken(w, r, c)
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type "+gt+" is not supported")
	}
}

func (s *Server) exchangeCode(w http.ResponseWriter, r *http.Request, c *store.Client) {
	f := r.PostForm
	code, verifier := f.Get("code"), f.Get("code_verifier")
	if code == "" || verifier == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "code and code_verifier are required")
		return
	}
	rec, err := s.store.RedeemCode(r.Context(), store.HashSecret(code))
	switch {
	case errors.Is(err, store.ErrReused):
		// OAuth 2.1 §4.1.3: a code used twice may have been stolen; revoke what its first use issued.
		s.log.WarnContext(r.Context(), "authorization code reused; revoking its grant", "client_id", rec.ClientID)
		s.cfg.Metrics.Revoked("code_reused")
		if err := s.store.RevokeFamily(r.Context(), rec.FamilyID); err != nil {
			s.storeFailed(w, r, "revoke family", err)
			return
		}
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the authorization code was already used; its tokens are revoked")
		return
	case errors.Is(err, store.ErrNotFound):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the authorization code is invalid or expired")
		return
	case err != nil:
		s.storeFailed(w, r, "redeem code", err)
		return
	}
	if rec.ClientID != c.ID {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the authorization code was issued to another client")
		return
	}
	if f.Get("redirect_uri") != "" && f.Get("redirect_uri") != rec.RedirectURI {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request's")
		return
	}
	if !pkceMatches(verifier, rec.CodeChallenge) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge (PKCE)")
		return
	}
	if res := f["resource"]; len(res) > 0 {
		if got, problem := s.resolveResource(res); problem != "" || got != rec.Resource {
			oauthError(w, http.StatusBadRequest, "invalid_target", "resource differs from the one authorized")
			return
		}
	}
	s.issueTokens(w, r, c, rec.FamilyID, rec.User, rec.Scope, rec.Resource, nil)
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

func (s *Server) refresh(w http.ResponseWriter, r *http.Request, c *store.Client) {
	f := r.PostForm
	presented := f.Get("refresh_token")
	if presented == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required")
		return
	}
	old, err := s.store.GetRefresh(r.Context(), store.HashSecret(presented))
	if errors.Is(err, store.ErrReused) {
		s.replayed(w, r, old)
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid, expired or revoked")
		return
	}
	if err != nil {
		s.storeFailed(w, r, "read refresh token", err)
		return
	}
	if old.ClientID != c.ID {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token was issued to another client")
		return
	}
	// The allow rules may have changed since login: a user no longer allowed loses the whole grant.
	if ok, reason := s.login.MayRefresh(old.User); !ok {
		s.log.InfoContext(r.Context(), "refresh refused: user no longer allowed", "login", old.User.Login, "reason", reason)
		if err := s.store.RevokeFamily(r.Context(), old.FamilyID); err != nil {
			s.storeFailed(w, r, "revoke family", err)
			return
		}
		oauthError(w, http.StatusBadRequest, "invalid_grant", reason)
		return
	}
	// A grant ends at its maximum age, counted from its login, and may refresh only so often (package grant).
	switch wait, err := s.cfg.Grants.Check(old, time.Now()); {
	case errors.Is(err, grant.ErrEnded):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "this grant reached its maximum age, "+
			s.cfg.Grants.MaxAge.String()+" after the login that started it: authorize again")
		return
	case errors.Is(err, grant.ErrTooFrequent):
		s.log.WarnContext(r.Context(), "refresh refused: the grant refreshes too often", "client_id", c.ID)
		secs := int(wait.Round(time.Second).Seconds())
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		oauthError(w, http.StatusTooManyRequests, "slow_down", fmt.Sprintf("this grant refreshed %d times within %s; "+
			"the refresh token is still valid: retry in %d s", s.cfg.Grants.RefreshLimit, s.cfg.Grants.Window, secs))
		return
	}
	// A refresh may narrow the grant (RFC 6749 §6); scopes it names that were not granted are ignored, never added.
	scope := narrowScope(old.Scope, f.Get("scope"))
	if res := f["resource"]; len(res) > 0 {
		if got, problem := s.resolveResource(res); problem != "" || got != old.Resource {
			oauthError(w, http.StatusBadRequest, "invalid_target", "resource differs from the one authorized")
			return
		}
	}
	s.issueTokens(w, r, c, old.FamilyID, old.User, scope, old.Resource, old)
}

// replayed handles a refresh token presented after it was rotated: the family is revoked (OAuth 2.1 §4.3.1),
// since either the client or an attacker holds a stolen token.
func (s *Server) replayed(w http.ResponseWriter, r *http.Request, old *store.RefreshToken) {
	s.log.WarnContext(r.Context(), "refresh token replayed; revoking its grant", "client_id", old.ClientID)
	s.cfg.Metrics.Revoked("refresh_replayed")
	if err := s.store.RevokeFamily(r.Context(), old.FamilyID); err != nil {
		s.storeFailed(w, r, "revoke family", err)
		return
	}
	oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token was already used; the grant is revoked, authorize again")
}

// issueTokens signs an access token, records it, and stores a new refresh token (rotating prev, the refresh token
// presented, if any; nil starts a grant). Nothing is returned to the client before its state is stored.
func (s *Server) issueTokens(w http.ResponseWriter, r *http.Request, c *store.Client, family string, user store.User,
	scope, resource string, prev *store.RefreshToken) {
	ctx := r.Context()
	now := time.Now()
	gs := s.cfg.Grants.Next(prev, now) // the grant's end and refresh count, carried by the next refresh token
	exp := gs.Clamp(now.Add(s.cfg.AccessTTL))
	access, jti, err := s.signAccess(ctx, c.ID, user, scope, resource, now, exp)
	if err != nil {
		s.storeFailed(w, r, "sign access token", err)
		return
	}
	resp := map[string]any{"access_token": access, "token_type": "Bearer",
		"expires_in": int(exp.Sub(now).Seconds()), "scope": scope}
	if slices.Contains(c.GrantTypes, "refresh_token") {
		refresh := randomToken(32)
		next := &store.RefreshToken{Hash: store.HashSecret(refresh), FamilyID: family, ClientID: c.ID, User: user,
			Scope: scope, Resource: resource, IssuedAt: now, ExpiresAt: gs.Clamp(now.Add(s.cfg.RefreshTTL)),
			GrantExpiresAt: gs.End, RefreshLoad: gs.Load, RefreshLoadAt: gs.LoadAt}
		if prev == nil {
			err = s.store.CreateRefresh(ctx, next)
		} else {
			var old *store.RefreshToken
			old, err = s.store.RotateRefresh(ctx, prev.Hash, next)
			if errors.Is(err, store.ErrReused) {
				s.replayed(w, r, old) // lost a race with another use of the same token
				return
			}
			if errors.Is(err, store.ErrNotFound) {
				oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid, expired or revoked")
				return
			}
		}
		if err != nil {
			s.storeFailed(w, r, "store refresh token", err)
			return
		}
		resp["refresh_token"] = refresh
	}
	err = s.store.RecordAccess(ctx, &store.AccessToken{JTI: jti, FamilyID: family, ClientID: c.ID, UserID: user.ID,
		Scope: scope, Resource: resource, IssuedAt: now, ExpiresAt: exp})
	if err != nil {
		s.storeFailed(w, r, "record access token", err)
		return
	}
	grant := r.PostForm.Get("grant_type") // one of the grant types the token endpoint accepted
	if grant == DeviceGrantType {
		grant = "device_code"
	}
	s.cfg.Metrics.Issued(grant)
	s.recordUse(ctx, c, now)
	writeJSON(w, http.StatusOK, resp)
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
