package main

import (
	"cmp"
	"context"
	"log/slog"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/socket"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/connections"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/metrics"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/flagenv"
)

// adminTarget is where the operator commands find the state: the server's store settings and admin socket.
func adminTarget(s *settings, trail *audit.Logger, log *slog.Logger) admin.Target {
	s.store.RedisAddrs = flagenv.Split(s.redisAddrs)
	s.store.Logger = log
	return admin.Target{Store: s.store, Socket: s.adminSocket, MaxTokenLifetime: s.accessTTL, Logger: log, Audit: trail,
		Connections: func(ctx context.Context, st store.Store) (service.Disconnecter, error) {
			conns, err := connectionsService(ctx, s, st, trail, log)
			if conns == nil {
				return nil, err // a nil *connections.Service is not a nil Disconnecter
			}
			return conns, err
		}}
}

// serveAdminSocket runs the operator command lines sent to the admin socket while the server holds the embedded
// store's file (on Redis the commands open Redis themselves, and an in-memory store has nothing to administer). The
// returned function stops it and waits until it has, so it runs before the store is closed.
func serveAdminSocket(ctx context.Context, s *settings, st store.Store, km *keys.Manager, conns *connections.Service, m *metrics.Metrics, trail *audit.Logger, log *slog.Logger) (stop func(), err error) {
	if s.store.UsesRedis() || s.store.DataFile == "" {
		return func() {}, nil
	}
	path := cmp.Or(s.adminSocket, socket.PathFor(s.store.DataFile))
	ln, err := socket.Listen(path, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		o := service.Options{InServer: true, Metrics: m, Audit: trail}
		if conns != nil {
			o.Connections = conns
		}
		run := admin.Local(service.New(st, km, o))
		if err := socket.Serve(ctx, ln, socket.Runner(run), log); err != nil {
			log.Error("admin socket stopped: operator commands need the server stopped until it restarts", "err", err)
		}
	}()
	log.Info("operator commands are served on the admin socket (owner only)", "socket", path)
	return func() { cancel(); <-done }, nil
}
