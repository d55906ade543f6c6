package oauth

import (
	"context"
	"errors"
	"net/http"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// introspect is POST /introspect (RFC 7662): the client is authenticated (clientForm), the token described
// (introspection, which returns the description or an error value) and this one place answers.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	c, err := s.clientForm(w, r)
	var body map[string]any
	if err == nil {
		body, err = s.introspection(r.Context(), c, r.PostForm.Get("token"))
	}
	if err != nil {
		s.answerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// introspection describes tok to client c. A client may introspect only its own tokens: any other token, like an
// unknown or revoked one, is inactive.
func (s *Server) introspection(ctx context.Context, c *store.Client, tok string) (map[string]any, error) {
	inactive := map[string]any{"active": false}
	if claims, err := s.parseAccess(ctx, tok); err == nil {
		revoked, err := s.store.IsRevoked(ctx, claims.ID)
		if err != nil {
			return nil, storeFailure("read revocations", err)
		}
		if revoked || claims.ClientID != c.ID {
			return inactive, nil
		}
		out := map[string]any{"active": true, "token_type": "Bearer", "scope": claims.Scope,
			"client_id": claims.ClientID, "username": claims.Username, "sub": claims.Subject, "aud": claims.Audience,
			"iss": claims.Issuer, "exp": claims.ExpiresAt.Unix(), "iat": claims.IssuedAt.Unix(), "jti": claims.ID}
		if len(claims.Groups) > 0 {
			out["groups"] = claims.Groups
		}
		return out, nil
	}
	rt, err := s.store.GetRefresh(ctx, store.HashSecret(tok))
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrReused) {
		return nil, storeFailure("read refresh token", err)
	}
	if err != nil || rt.ClientID != c.ID {
		return inactive, nil
	}
	return map[string]any{"active": true, "token_type": "refresh_token", "scope": rt.Scope,
		"client_id": rt.ClientID, "username": rt.User.Login, "sub": rt.User.ID, "aud": rt.Resource,
		"iss": s.cfg.Issuer, "exp": rt.ExpiresAt.Unix(), "iat": rt.IssuedAt.Unix()}, nil
}
