package oauth

import (
	"errors"
	"net/http"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// revoke is POST /revoke (RFC 7009): refresh tokens revoke their whole grant, access tokens go to the feed.
// The answer is 200 whether or not the token was known, so the endpoint reveals nothing.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	c := s.clientForm(w, r)
	if c == nil {
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	ctx := r.Context()
	if rt, err := s.store.GetRefresh(ctx, store.HashSecret(tok)); err == nil || errors.Is(err, store.ErrReused) {
		if rt.ClientID == c.ID {
			if err := s.store.RevokeFamily(ctx, rt.FamilyID); err != nil {
				s.storeFailed(w, r, "revoke family", err)
				return
			}
			s.cfg.Metrics.Revoked("revoke_endpoint")
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		s.storeFailed(w, r, "read refresh token", err)
		return
	} else if claims, err := s.parseAccess(ctx, tok); err == nil && claims.ClientID == c.ID {
		if err := s.store.RevokeAccess(ctx, claims.ID, claims.ExpiresAt.Time); err != nil {
			s.storeFailed(w, r, "revoke access token", err)
			return
		}
		s.cfg.Metrics.Revoked("revoke_endpoint")
	}
	w.WriteHeader(http.StatusOK)
}
