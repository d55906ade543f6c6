// Package service is what each operator command does to the store. The command line (package admin) runs on a
// Service in one of two places, and both end here:
//
//   - in its own process: `authserver clients list` opens the store (Redis, or the embedded store's file when no
//     server holds it) and runs on a Service on it;
//   - in the running server: the embedded store's file is held by the server, so the command line goes through the
//     server's admin socket (package socket), and the server runs the same command line on its own Service, on the
//     store it serves from.
package service

import (
	"context"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/metrics"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// Options say where a Service runs.
type Options struct {
	// InServer: the store is the one a running server serves from (its admin socket). Restore is then refused: it
	// would put a whole state under a server that keeps working on its own (sessions in flight, cached signing keys,
	// the edge's feed cursor), so it needs the server stopped.
	InServer bool
	// Metrics, in the server, counts the revocations made through its socket like those of its endpoints (a command
	// that opens the store itself runs in another process, whose counts no one scrapes).
	Metrics *metrics.Metrics
	// Audit records every command and what it changed (nil: nothing recorded).
	Audit *audit.Logger
	// Connections disconnects users' connected accounts, revoking their tokens at the upstream too (nil: the
	// commands delete them from the store only, where no connected accounts are configured).
	Connections Disconnecter
}

// Disconnecter deletes a user's connection to an upstream and revokes its tokens there (connections.Service).
type Disconnecter interface {
	Disconnect(ctx context.Context, userID, upstream string) error
}

// The audit events of the operator commands (docs/observability.md).
const (
	eventCommand       = "admin.command" // every command line, with its outcome
	eventClientDeleted = "client.deleted"
	eventClientPurged  = "client.purged"
	eventGrantRevoked  = "grant.revoked"
	eventKeyRotated    = "key.rotated"
	eventConnDeleted   = "connection.deleted"
)

// via says where a command ran: in the server, through its admin socket, or in a process of its own.
func (s *Service) via() string {
	if s.opts.InServer {
		return "socket"
	}
	return "cli"
}

// record writes an audit event of this service's commands.
func (s *Service) record(ctx context.Context, e audit.Event) {
	e.Via = s.via()
	if e.Outcome == "" {
		e.Outcome = audit.OutcomeSuccess
	}
	s.opts.Audit.Record(ctx, e)
}

// RecordCommand records that a command line ran: its command (e.g. "clients delete"), what it acted on (a client or
// user id, or ""), and how it ended.
func (s *Service) RecordCommand(ctx context.Context, command, target string, err error) {
	e := audit.Event{Name: eventCommand, Command: command, Target: target}
	if err != nil {
		e.Outcome, e.Reason = audit.OutcomeFailure, err.Error()
	}
	s.record(ctx, e)
}

// Service runs the operator commands on a store this process has open.
type Service struct {
	store store.Store
	keys  *keys.Manager
	opts  Options
}

// New returns the commands on st. km manages its signing keys (the server's own manager in the server, so a
// rotation is in use at once).
func New(st store.Store, km *keys.Manager, o Options) *Service {
	return &Service{store: st, keys: km, opts: o}
}

// Client is what the commands show of a client: never its secret or registration token hashes.
type Client struct {
	ID           string    `json:"client_id"`
	Name         string    `json:"client_name,omitempty"`
	AuthMethod   string    `json:"token_endpoint_auth_method"`
	RedirectURIs []string  `json:"redirect_uris"`
	GrantTypes   []string  `json:"grant_types,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	IssuedAt     time.Time `json:"issued_at"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	LastUsedAt   time.Time `json:"last_used_at,omitzero"` // zero: never obtained a token (or not since uses were recorded)
}

// GrantFilter selects grants by user (the tokens' sub) or by client; a grant matching either is listed.
type GrantFilter struct {
	UserID   string
	ClientID string
}

// Grant is one live grant (the chain of tokens from one authorization): never a token or a hash.
type Grant struct {
	Family       string    `json:"grant"`
	ClientID     string    `json:"client_id"`
	UserID       string    `json:"user_id"`
	Login        string    `json:"login"`
	Resource     string    `json:"resource"`
	Scope        string    `json:"scope"`
	IssuedAt     time.Time `json:"refreshed_at"`
	ExpiresAt    time.Time `json:"refresh_expires_at"`
	AccessTokens int       `json:"live_access_tokens"`
}

// KeyRotation is the key RotateKeys published.
type KeyRotation struct {
	KID      string    `json:"kid"`
	ActiveAt time.Time `json:"active_at"`
}
