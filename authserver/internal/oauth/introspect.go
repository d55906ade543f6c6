package oauth

import (
	"errors"
	"net/http"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// introspect is POST /introspect (RFC 7662). A client may introspect only its own tokens.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	c := s.clientForm(w, r)
	if c == nil {
		return
	}
	tok := r.PostForm.Get("token")
	ctx := r.Context()
	inactive := map[string]any{"active": false}
	if claims, err := s.parseAccess(ctx, tok); err == nil {
		revoked, err := s.store.IsRevoked(ctx, claims.ID)
		if err != nil {
			s.storeFailed(w, r, "read revocations", err)
			return
		}
		if revoked || claims.ClientID != c.ID {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"active": true, "token_type": "Bearer", "scope": claims.Scope,
			"client_id": claims.ClientID, "username": claims.Username, "sub": claims.Subject, "aud": claims.Audience,
			"iss": claims.Issuer, "exp": claims.ExpiresAt.Unix(), "iat": claims.IssuedAt.Unix(), "jti": claims.ID})
		return
	}
	rt, err := s.store.GetRefresh(ctx, store.HashSecret(tok))
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrReused) {
		s.storeFailed(w, r, "read refresh token", err)
		return
	}
	if err != nil || rt.ClientID != c.ID {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"active": true, "token_type": "refresh_token", "scope": rt.Scope,
		"client_id": rt.ClientID, "username": rt.User.Login, "sub": rt.User.ID, "aud": rt.Resource,
		"iss": s.cfg.Issuer, "exp": rt.ExpiresAt.Unix(), "iat": rt.IssuedAt.Unix()})
}
