package oauth

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/successor"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// A refresh token is used once: its rotation hands out a successor, and presenting it again is a replay that
// revokes the whole grant (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2), since the client or a thief holds a copy. Real
// clients present a token again without any theft: a response lost and retried, two threads or egress nodes
// refreshing at once, a process holding an older generation. So for a short while after the rotation
// (Config.RefreshReuseWindow) the rotated token is answered with the response that rotated it: the same successor
// and the same access token, sealed for the token's holder at the rotation (package successor). Nothing new is
// minted, so the grant never forks into two live branches. Once the successor has been used, or after the window,
// the old token is a replay as before.

// reuse answers a refresh token presented after its rotation: the rotation's response within the window, else a
// replay.
func (s *Server) reuse(ctx context.Context, f url.Values, c *store.Client, presented string, old *store.RefreshToken) (*issued, error) {
	now := s.now()
	rot := old.Rotation
	switch {
	case s.cfg.RefreshReuseWindow <= 0:
		return nil, s.replayed(ctx, old, "no reuse window")
	case old.ClientID != c.ID:
		return nil, s.replayed(ctx, old, "presented by another client")
	case rot == nil:
		return nil, s.replayed(ctx, old, "its rotation is not recorded (rotated by an older version, or restored from a backup)")
	case rot.SuccessorUsed:
		return nil, s.replayed(ctx, old, "its successor was used already")
	case !now.Before(rot.At.Add(s.cfg.RefreshReuseWindow)):
		return nil, s.replayed(ctx, old, "presented after the reuse window")
	case len(rot.Sealed) == 0:
		return nil, s.replayed(ctx, old, "no response was kept from its rotation (rotated without a reuse window)")
	}
	resp, err := successor.Open(presented, old.Hash, rot.Sealed)
	if err != nil {
		// The token's record holds a response sealed for another token: the store was altered.
		s.log.ErrorContext(ctx, "the rotated refresh token's sealed response does not open", "client_id", c.ID, "err", err)
		return nil, s.replayed(ctx, old, "its sealed response does not open")
	}
	// A refresh's checks, but the rate: this issues nothing, the successor was counted when it was issued.
	if err := s.stillAllowed(ctx, old); err != nil {
		return nil, err
	}
	if end := s.cfg.Grants.End(old, now); !end.IsZero() && !now.Before(end) {
		return nil, s.grantEnded()
	}
	if err := s.sameResource(f, old.Resource); err != nil {
		return nil, err
	}
	if asked := narrowScope(old.Scope, f.Get("scope")); !covers(asked, resp.Scope) {
		return nil, badRequest("invalid_scope", fmt.Sprintf("this refresh token was rotated moments ago to a grant of "+
			"scope %q, more than the %q this request asks for: use the refresh token that rotation returned, or "+
			"repeat its request", resp.Scope, asked))
	}
	s.log.InfoContext(ctx, "refresh token presented again within the reuse window; answered with its successor",
		"client_id", c.ID, "user", old.User.Login, "user_id", old.User.ID, "after", now.Sub(rot.At).Round(time.Millisecond))
	s.cfg.Metrics.RefreshGraceReuse()
	s.record(ctx, withUser(audit.Event{Name: eventTokenRefreshed, Outcome: audit.OutcomeSuccess,
		Reason: "presented again within the reuse window: the same successor", ClientID: c.ID, GrantType: "refresh_token",
		Scope: resp.Scope, Resource: old.Resource}, &old.User))
	return &issued{at: now, body: map[string]any{"access_token": resp.AccessToken, "token_type": "Bearer",
		"expires_in": max(0, int(resp.AccessExpiresAt.Sub(now).Seconds())), "scope": resp.Scope,
		"refresh_token": resp.RefreshToken}}, nil
}

// replayed answers a refresh token presented after it was rotated, outside the reuse window (why says how): the
// family is revoked (OAuth 2.1 §4.3.1), since either the client or an attacker holds a stolen token.
func (s *Server) replayed(ctx context.Context, old *store.RefreshToken, why string) error {
	s.log.WarnContext(ctx, "refresh token replayed; revoking its grant", "client_id", old.ClientID,
		"user", old.User.Login, "user_id", old.User.ID, "why", why)
	s.cfg.Metrics.Revoked("refresh_replayed")
	if err := s.store.RevokeFamily(ctx, old.FamilyID); err != nil {
		return storeFailure("revoke family", err)
	}
	s.record(ctx, withUser(audit.Event{Name: eventGrantRevoked, Outcome: audit.OutcomeSuccess,
		Reason: "refresh token replayed: " + why, ClientID: old.ClientID, Scope: old.Scope, Resource: old.Resource}, &old.User))
	return badRequest("invalid_grant", "the refresh token was already used; the grant is revoked, authorize again")
}
