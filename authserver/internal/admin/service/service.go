// Package service is the one implementation of the operator commands: what each of them does to the store. The
// command line reaches it in one of two ways, and both end here:
//
//   - directly: `authserver clients list` opens the store (Redis, or the embedded store's file when no server holds
//     it) and calls a Local service on it;
//   - through a running server: the embedded store's file is held by the server, so the command calls the server's
//     admin socket (package socket), whose handlers call the server's own Local service, on the store it serves from.
//
// A new command is a method of Service (and of Local), a handler and a client method in package socket (one line
// each), and its printing in package admin.
package service

import (
	"context"
	"io"
	"time"
)

// Service is every operator command that touches the store. Implementations: Local (on a store this process has
// open) and socket.Client (the same Local, in the running server, through its admin socket).
type Service interface {
	// ListClients returns every registered client, oldest first.
	ListClients(ctx context.Context) ([]Client, error)
	// GetClient returns one client (ErrNotFound if there is none with that id).
	GetClient(ctx context.Context, id string) (Client, error)
	// DeleteClient revokes every token of the client, then deletes it (what RFC 7592 DELETE does). It returns how
	// many grants it revoked.
	DeleteClient(ctx context.Context, id string) (revokedGrants int, err error)
	// RevokeClient revokes every grant (refresh and access tokens) of a client and keeps the client.
	RevokeClient(ctx context.Context, id string) (revokedGrants int, err error)
	// RevokeUser revokes every grant of a user (GitHub numeric id), across all clients.
	RevokeUser(ctx context.Context, userID string) (revokedGrants int, err error)
	// ListGrants returns the live grants of a user or of a client, the most recently refreshed first.
	ListGrants(ctx context.Context, f GrantFilter) ([]Grant, error)
	// Purge removes expired records now and returns how many.
	Purge(ctx context.Context) (int, error)
	// PurgeClients deletes registered clients nobody uses (never used, or idle), keeping those with live grants.
	PurgeClients(ctx context.Context, o PurgeClientsOptions) (PurgedClients, error)
	// Backup writes the whole store in the store's dump format.
	Backup(ctx context.Context, w io.Writer) error
	// Restore loads a dump (from either backend) into the store.
	Restore(ctx context.Context, r io.Reader) error
	// RotateKeys publishes a new signing key that signs after activateAfter.
	RotateKeys(ctx context.Context, activateAfter time.Duration) (KeyRotation, error)
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

// GrantFilter selects grants by user (GitHub numeric id) or by client; a grant matching either is listed.
type GrantFilter struct {
	UserID   string `json:"user_id,omitempty"`
	ClientID string `json:"client_id,omitempty"`
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
