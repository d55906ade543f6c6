// Package backend opens the store the configuration asks for: Redis when an address is given, else the embedded
// single-node store.
package backend

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/redisstore"
)

// Config selects and configures the backend.
type Config struct {
	// RedisURL (redis://, rediss:// for TLS, ?master_name= for Sentinel) or RedisAddrs selects Redis.
	RedisURL        string
	RedisAddrs      []string
	RedisMasterName string // Sentinel master; RedisAddrs are then the Sentinels
	RedisUsername   string
	RedisPassword   string
	RedisTLS        bool   // TLS with Addrs (a rediss:// URL turns it on by itself)
	RedisCAFile     string // PEM file of the CA that signed the Redis server's certificate (default: system roots)
	RedisDB         int
	RedisCluster    bool   // RedisURL/RedisAddrs name Cluster nodes
	RedisPrefix     string // key prefix, default "mcpgw:" (used as a hash tag)

	// DataFile is the embedded store's file, used when no Redis is configured. Its directory is created (0700) if
	// needed. "" keeps the state in memory only (lost on exit).
	DataFile string
	// Server opens the embedded store as the authserver itself rather than an operator's command (see
	// embedded.OpenServer).
	Server bool

	Logger *slog.Logger
}

// UsesRedis reports whether the configuration selects Redis.
func (c Config) UsesRedis() bool { return c.RedisURL != "" || len(c.RedisAddrs) > 0 }

// Open opens the configured backend and logs which one it is.
func Open(ctx context.Context, c Config) (store.Store, error) {
	logger := cmp.Or(c.Logger, slog.Default())
	if c.UsesRedis() {
		var tlsConfig *tls.Config
		if c.RedisCAFile != "" {
			pem, err := os.ReadFile(c.RedisCAFile)
			if err != nil {
				return nil, fmt.Errorf("open Redis store: read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("open Redis store: no PEM certificate in CA file %s", c.RedisCAFile)
			}
			tlsConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		s, err := redisstore.Open(ctx, redisstore.Options{
			URL: c.RedisURL, Cluster: c.RedisCluster, Addrs: c.RedisAddrs, MasterName: c.RedisMasterName,
			Username: c.RedisUsername, Password: c.RedisPassword, TLS: c.RedisTLS, TLSConfig: tlsConfig, DB: c.RedisDB,
			Prefix: c.RedisPrefix, Logger: logger,
		})
		if err != nil {
			return nil, fmt.Errorf("open Redis store: %w", err)
		}
		// Never log the URL: it may hold the password.
		logger.Info("store: Redis", "addrs", c.RedisAddrs, "sentinel_master", c.RedisMasterName,
			"cluster", c.RedisCluster, "prefix", cmp.Or(c.RedisPrefix, redisstore.DefaultPrefix))
		return s, nil
	}
	if c.DataFile != "" {
		if err := os.MkdirAll(filepath.Dir(c.DataFile), 0o700); err != nil {
			return nil, fmt.Errorf("open embedded store: create directory for %s: %w", c.DataFile, err)
		}
	}
	openEmbedded := embedded.Open
	if c.Server {
		openEmbedded = embedded.OpenServer
	}
	s, err := openEmbedded(c.DataFile, logger)
	if err != nil {
		return nil, fmt.Errorf("open embedded store: %w", err)
	}
	logger.Info("store: embedded", "path", c.DataFile)
	return s, nil
}
