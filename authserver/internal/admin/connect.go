package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/socket"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/backend"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// Target is where the commands find the state: the server's store settings and, for the embedded store, the admin
// socket of a server running on it.
type Target struct {
	Store backend.Config
	// Socket is the admin socket; "" is socket.PathFor(Store.DataFile), where the server listens by default.
	Socket string
	// MaxTokenLifetime is the access token lifetime: how long a rotated-out signing key stays published.
	MaxTokenLifetime time.Duration
	Logger           *slog.Logger
	// Audit records the commands run in this process (those sent to a server's socket are recorded by the server).
	Audit *audit.Logger
	// Connections builds the connected accounts on the opened store, for the commands that disconnect them (nil,
	// or a nil Disconnecter: none are configured). It runs at the first such command only, so that the others
	// need no connections key.
	Connections func(ctx context.Context, st store.Store) (service.Disconnecter, error)
}

// lazyConnections builds the connected accounts at their first use; where none are configured, a connection is
// deleted from the store only (there is no upstream to revoke its tokens at).
type lazyConnections struct {
	once  sync.Once
	st    store.Store
	build func() (service.Disconnecter, error)
	d     service.Disconnecter
	err   error
}

func (l *lazyConnections) Disconnect(ctx context.Context, userID, upstream string) error {
	l.once.Do(func() { l.d, l.err = l.build() })
	switch {
	case l.err != nil:
		return fmt.Errorf("connected accounts: %w", l.err)
	case l.d == nil:
		return l.st.DeleteConnection(ctx, userID, upstream)
	}
	return l.d.Disconnect(ctx, userID, upstream)
}

// Connect returns where the commands run. It opens the configured store (Redis, or the embedded store's file when
// no process holds it) and runs them here; when a running authserver holds that file, the command lines go through
// the server's admin socket instead, and run in the server, on the state it serves.
func Connect(ctx context.Context, t Target) (Runner, func() error, error) {
	logger := cmp.Or(t.Logger, slog.Default())
	st, err := backend.Open(ctx, t.Store)
	if err == nil {
		km := &keys.Manager{Store: st, MaxTokenLifetime: t.MaxTokenLifetime}
		o := service.Options{Audit: t.Audit}
		if t.Connections != nil {
			o.Connections = &lazyConnections{st: st, build: func() (service.Disconnecter, error) { return t.Connections(ctx, st) }}
		}
		return Local(service.New(st, km, o)), st.Close, nil
	}
	if t.Store.UsesRedis() || !errors.Is(err, embedded.ErrInUse) {
		return nil, nil, err
	}
	path := cmp.Or(t.Socket, socket.PathFor(t.Store.DataFile))
	c, dialErr := socket.Dial(ctx, path)
	if dialErr != nil {
		return nil, nil, fmt.Errorf("%w; and no authserver answers on its admin socket (%w): is the process holding it "+
			"an authserver older than this command, or one with another --admin-socket (AUTHSERVER_ADMIN_SOCKET)?", err, dialErr)
	}
	logger.Info("the store is in use by the running authserver: the command runs there, through its admin socket", "socket", path)
	return c.Run, c.Close, nil
}
