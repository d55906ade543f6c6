package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

func viewOf(c *store.Client) Client {
	return Client{ID: c.ID, Name: c.Name, AuthMethod: c.TokenEndpointAuth, RedirectURIs: c.RedirectURIs,
		GrantTypes: c.GrantTypes, Scope: c.Scope, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, LastUsedAt: c.LastUsedAt}
}

// ListClients returns every registered client, oldest first.
func (s *Service) ListClients(ctx context.Context) ([]Client, error) {
	clients, err := s.store.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	slices.SortFunc(clients, func(x, y *store.Client) int { return x.IssuedAt.Compare(y.IssuedAt) })
	views := make([]Client, 0, len(clients))
	for _, c := range clients {
		views = append(views, viewOf(c))
	}
	return views, nil
}

// GetClient returns one client (ErrNotFound if there is none with that id).
func (s *Service) GetClient(ctx context.Context, id string) (Client, error) {
	c, err := s.store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Client{}, failure(ErrNotFound, "no client with id %q (list them with `authserver clients list`)", id)
	}
	if err != nil {
		return Client{}, fmt.Errorf("read client %s: %w", id, err)
	}
	return viewOf(c), nil
}

// DeleteClient revokes every token of the client, then deletes it (what RFC 7592 DELETE does). It returns how
// many grants it revoked.
func (s *Service) DeleteClient(ctx context.Context, id string) (int, error) {
	n, err := s.RevokeClient(ctx, id)
	if err != nil {
		return 0, err
	}
	if err := s.store.DeleteClient(ctx, id); err != nil {
		return n, fmt.Errorf("delete client %s: %w", id, err)
	}
	s.record(ctx, audit.Event{Name: eventClientDeleted, ClientID: id, Reason: "by an operator", Count: n})
	return n, nil
}

// RevokeClient revokes every grant (refresh and access tokens) of a client, keeps the client, and returns how
// many grants it revoked.
func (s *Service) RevokeClient(ctx context.Context, id string) (int, error) {
	if _, err := s.GetClient(ctx, id); err != nil {
		return 0, err
	}
	n, err := s.store.RevokeClient(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of client %s: %w", id, err)
	}
	s.opts.Metrics.Revoked("admin_client")
	s.record(ctx, audit.Event{Name: eventGrantRevoked, ClientID: id, Reason: "by an operator: the client's grants", Count: n})
	return n, nil
}

// RevokeUser revokes every grant of a user (the tokens' sub), across all clients, and returns how many.
func (s *Service) RevokeUser(ctx context.Context, userID string) (int, error) {
	if !login.ValidUserID(userID) {
		return 0, failure(ErrInvalid, "revoke user tokens: %q is not a user id (the token's sub, X-User-Id): a GitHub numeric "+
			"user id, or <provider>:<sub> for an OpenID provider's user", userID)
	}
	n, err := s.store.RevokeUser(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of user %s: %w", userID, err)
	}
	s.opts.Metrics.Revoked("admin_user")
	s.record(ctx, audit.Event{Name: eventGrantRevoked, UserID: userID, Reason: "by an operator: the user's grants", Count: n})
	return n, nil
}

// Purge removes expired records now and returns how many.
func (s *Service) Purge(ctx context.Context) (int, error) {
	n, err := s.store.PurgeExpired(ctx)
	if err != nil {
		return 0, fmt.Errorf("purge expired records: %w", err)
	}
	return n, nil
}

// Backup writes the whole store in the store's dump format. On the embedded store the dump is one consistent
// snapshot (copied under the store's lock, also while the server serves from it); Redis offers none across keys (see
// redisstore's Dump).
func (s *Service) Backup(ctx context.Context, w io.Writer) error {
	b, ok := s.store.(store.Backup)
	if !ok {
		return errors.New("backup: this store backend cannot dump its state")
	}
	if err := b.Dump(ctx, w); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore loads a dump (from either backend) into the store.
func (s *Service) Restore(ctx context.Context, r io.Reader) error {
	if s.opts.InServer {
		return failure(ErrServerRunning, "restore: the authserver is running on this store; stop it first, then run the restore "+
			"again (it then loads the backup into the store's file itself)")
	}
	b, ok := s.store.(store.Backup)
	if !ok {
		return errors.New("restore: this store backend cannot restore a dump")
	}
	if err := b.Restore(ctx, r); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// RotateKeys publishes a new signing key that signs after activateAfter.
func (s *Service) RotateKeys(ctx context.Context, activateAfter time.Duration) (KeyRotation, error) {
	if activateAfter < 0 {
		return KeyRotation{}, failure(ErrInvalid, "rotate keys: --activate-after %s is negative", activateAfter)
	}
	if err := s.keys.Ensure(ctx); err != nil {
		return KeyRotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	kid, err := s.keys.Rotate(ctx, activateAfter)
	if err != nil {
		return KeyRotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	s.record(ctx, audit.Event{Name: eventKeyRotated, KeyID: kid, Reason: "signs after " + activateAfter.String()})
	return KeyRotation{KID: kid, ActiveAt: time.Now().Add(activateAfter).UTC()}, nil
}
