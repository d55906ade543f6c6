package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/connections"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// Connection is what the commands show of a connected account: never its tokens (which the store holds sealed).
type Connection struct {
	UserID         string    `json:"user_id"`
	Upstream       string    `json:"upstream"`
	Scope          string    `json:"scope,omitempty"`
	KeyID          string    `json:"key_id"`
	TokenExpiresAt time.Time `json:"token_expires_at,omitzero"`
	CreatedAt      time.Time `json:"created_at"`
	RefreshedAt    time.Time `json:"refreshed_at,omitzero"`
}

// ListConnections returns the connected accounts of a user, or everyone's (userID "").
func (s *Service) ListConnections(ctx context.Context, userID string) ([]Connection, error) {
	if userID != "" && !login.ValidUserID(userID) {
		return nil, failure(ErrInvalid, "connections list: %q is not a user id (the token's sub, X-User-Id)", userID)
	}
	conns, err := s.store.ListConnections(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	views := make([]Connection, 0, len(conns))
	for _, c := range conns {
		views = append(views, Connection{UserID: c.UserID, Upstream: c.Upstream, Scope: c.Scope, KeyID: c.KeyID,
			TokenExpiresAt: c.TokenExpiresAt, CreatedAt: c.CreatedAt, RefreshedAt: c.RefreshedAt})
	}
	return views, nil
}

// RevokeConnections deletes a user's connection to upstream, or all of the user's connections (upstream ""), and
// returns how many it deleted. The next request for such a token finds none: the user must connect again. Where
// connected accounts are configured, their tokens are revoked at the upstream too.
func (s *Service) RevokeConnections(ctx context.Context, userID, upstream string) (int, error) {
	if !login.ValidUserID(userID) {
		return 0, failure(ErrInvalid, "connections revoke: %q is not a user id (the token's sub, X-User-Id)", userID)
	}
	conns, err := s.store.ListConnections(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("list connections of user %s: %w", userID, err)
	}
	n := 0
	for _, c := range conns {
		if upstream != "" && c.Upstream != upstream {
			continue
		}
		switch err := s.disconnect(ctx, userID, c.Upstream); {
		case err == nil:
			n++
		case errors.Is(err, store.ErrNotFound), errors.Is(err, connections.ErrNotConnected): // gone meanwhile
		default:
			return n, fmt.Errorf("delete the connection of user %s to %s: %w", userID, c.Upstream, err)
		}
	}
	if n > 0 {
		s.record(ctx, audit.Event{Name: eventConnDeleted, UserID: userID, Upstream: upstream, Reason: "by an operator", Count: n})
	}
	if upstream != "" && n == 0 {
		return 0, failure(ErrNotFound, "user %s has no connection to %s (list them with `authserver connections list --user %s`)", userID, upstream, userID)
	}
	return n, nil
}

func (s *Service) disconnect(ctx context.Context, userID, upstream string) error {
	if s.opts.Connections != nil {
		return s.opts.Connections.Disconnect(ctx, userID, upstream)
	}
	return s.store.DeleteConnection(ctx, userID, upstream)
}
