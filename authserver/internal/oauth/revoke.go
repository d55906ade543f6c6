package oauth

import (
	"context"
	"errors"
	"net/http"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// revoke is POST /revoke (RFC 7009): the client is authenticated (clientForm), the token revoked (revokeToken,
// which returns an error value) and this one place answers. The answer is 200 whether or not the token was known,
// so the endpoint reveals nothing.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	c, err := s.clientForm(w, r)
	if err == nil {
		err = s.revokeToken(r.Context(), c, r.PostForm.Get("token"))
	}
	if err != nil {
		s.answerError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// revokeToken revokes tok if client c holds it: a refresh token's whole grant, or an access token (to the feed).
func (s *Server) revokeToken(ctx context.Context, c *store.Client, tok string) error {
	if tok == "" {
		return badRequest("invalid_request", "token is required")
	}
	rt, err := s.store.GetRefresh(ctx, store.HashSecret(tok))
	switch {
	case err == nil || errors.Is(err, store.ErrReused):
		if rt.ClientID != c.ID {
			return nil
		}
		if err := s.store.RevokeFamily(ctx, rt.FamilyID); err != nil {
			return storeFailure("revoke family", err)
		}
		s.record(ctx, withUser(audit.Event{Name: eventTokenRevoked, Outcome: audit.OutcomeSuccess,
			Reason: "refresh token: its grant", ClientID: c.ID, Scope: rt.Scope, Resource: rt.Resource}, &rt.User))
	case !errors.Is(err, store.ErrNotFound):
		return storeFailure("read refresh token", err)
	default:
		claims, err := s.parseAccess(ctx, tok)
		if err != nil || claims.ClientID != c.ID {
			return nil
		}
		if err := s.store.RevokeAccess(ctx, claims.ID, claims.ExpiresAt.Time); err != nil {
			return storeFailure("revoke access token", err)
		}
		s.record(ctx, audit.Event{Name: eventTokenRevoked, Outcome: audit.OutcomeSuccess, Reason: "access token",
			ClientID: c.ID, UserID: claims.Subject, TokenID: claims.ID})
	}
	s.cfg.Metrics.Revoked("revoke_endpoint")
	return nil
}
