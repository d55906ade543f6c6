package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/idp"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/metrics"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Options say where a Local service runs.
type Options struct {
	// InServer: the store is the one a running server serves from (its admin socket). Restore is then refused: it
	// would put a whole state under a server that keeps working on its own (sessions in flight, cached signing keys,
	// the edge's feed cursor), so it needs the server stopped.
	InServer bool
	// Metrics, in the server, counts the revocations made through its socket like those of its endpoints (a command
	// that opens the store itself runs in another process, whose counts no one scrapes).
	Metrics *metrics.Metrics
}

// Local runs the commands on a store this process has open.
type Local struct {
	store store.Store
	keys  *keys.Manager
	opts  Options
}

var _ Service = (*Local)(nil)

// New returns the commands on st. km manages its signing keys (the server's own manager in the server, so a
// rotation is in use at once).
func New(st store.Store, km *keys.Manager, o Options) *Local {
	return &Local{store: st, keys: km, opts: o}
}

func viewOf(c *store.Client) Client {
	return Client{ID: c.ID, Name: c.Name, AuthMethod: c.TokenEndpointAuth, RedirectURIs: c.RedirectURIs,
		GrantTypes: c.GrantTypes, Scope: c.Scope, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, LastUsedAt: c.LastUsedAt}
}

// ListClients implements Service.
func (l *Local) ListClients(ctx context.Context) ([]Client, error) {
	clients, err := l.store.ListClients(ctx)
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

// GetClient implements Service.
func (l *Local) GetClient(ctx context.Context, id string) (Client, error) {
	c, err := l.store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Client{}, failure(ErrNotFound, "no client with id %q (list them with `authserver clients list`)", id)
	}
	if err != nil {
		return Client{}, fmt.Errorf("read client %s: %w", id, err)
	}
	return viewOf(c), nil
}

// DeleteClient implements Service.
func (l *Local) DeleteClient(ctx context.Context, id string) (int, error) {
	n, err := l.RevokeClient(ctx, id)
	if err != nil {
		return 0, err
	}
	if err := l.store.DeleteClient(ctx, id); err != nil {
		return n, fmt.Errorf("delete client %s: %w", id, err)
	}
	return n, nil
}

// RevokeClient implements Service.
func (l *Local) RevokeClient(ctx context.Context, id string) (int, error) {
	if _, err := l.GetClient(ctx, id); err != nil {
		return 0, err
	}
	n, err := l.store.RevokeClient(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of client %s: %w", id, err)
	}
	l.opts.Metrics.Revoked("admin_client")
	return n, nil
}

// RevokeUser implements Service.
func (l *Local) RevokeUser(ctx context.Context, userID string) (int, error) {
	if !idp.ValidUserID(userID) {
		return 0, failure(ErrInvalid, "revoke user tokens: %q is not a user id (the token's sub, X-User-Id): a GitHub numeric "+
			"user id, or <provider>:<sub> for an OpenID provider's user", userID)
	}
	n, err := l.store.RevokeUser(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of user %s: %w", userID, err)
	}
	l.opts.Metrics.Revoked("admin_user")
	return n, nil
}

// Purge implements Service.
func (l *Local) Purge(ctx context.Context) (int, error) {
	n, err := l.store.PurgeExpired(ctx)
	if err != nil {
		return 0, fmt.Errorf("purge expired records: %w", err)
	}
	return n, nil
}

// Backup implements Service. On the embedded store the dump is one consistent snapshot (copied under the store's
// lock, also while the server serves from it); Redis offers none across keys (see redisstore's Dump).
func (l *Local) Backup(ctx context.Context, w io.Writer) error {
	b, ok := l.store.(store.Backup)
	if !ok {
		return errors.New("backup: this store backend cannot dump its state")
	}
	if err := b.Dump(ctx, w); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore implements Service.
func (l *Local) Restore(ctx context.Context, r io.Reader) error {
	if l.opts.InServer {
		return failure(ErrServerRunning, "restore: the authserver is running on this store; stop it first, then run the restore "+
			"again (it then loads the backup into the store's file itself)")
	}
	b, ok := l.store.(store.Backup)
	if !ok {
		return errors.New("restore: this store backend cannot restore a dump")
	}
	if err := b.Restore(ctx, r); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// RotateKeys implements Service.
func (l *Local) RotateKeys(ctx context.Context, activateAfter time.Duration) (KeyRotation, error) {
	if activateAfter < 0 {
		return KeyRotation{}, failure(ErrInvalid, "rotate keys: --activate-after %s is negative", activateAfter)
	}
	if err := l.keys.Ensure(ctx); err != nil {
		return KeyRotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	kid, err := l.keys.Rotate(ctx, activateAfter)
	if err != nil {
		return KeyRotation{}, fmt.Errorf("rotate keys: %w", err)
	}
	return KeyRotation{KID: kid, ActiveAt: time.Now().Add(activateAfter).UTC()}, nil
}
