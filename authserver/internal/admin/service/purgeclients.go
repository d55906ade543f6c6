package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientlife"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// PurgeClientsOptions say which registered clients `clients purge` removes.
type PurgeClientsOptions struct {
	UnusedFor time.Duration // never used and registered longer ago than this (0: this rule off)
	IdleFor   time.Duration // last used longer ago than this (0: this rule off)
	DryRun    bool          // list them, delete nothing
}

// PurgedClients is what a purge removed (or, in a dry run, would remove).
type PurgedClients struct {
	Clients []Client `json:"clients"`
	// KeptWithGrants counts clients the rules matched that still hold a live grant (typically registered before
	// uses were recorded): they are in use, so they stay.
	KeptWithGrants int  `json:"kept_with_grants"`
	DryRun         bool `json:"dry_run"`
}

// PurgeClients deletes registered clients nobody uses (never used, or idle). A client is removed when clientlife.Stale says so, it was registered to expire
// (a client registered without expiry, e.g. by an operator, is never purged) and no live grant (refresh token or
// unrevoked access token) names it. Each is checked again just before it is deleted, so one used in the meantime
// stays; its tokens are revoked first, as RFC 7592 DELETE does.
func (s *Service) PurgeClients(ctx context.Context, o PurgeClientsOptions) (PurgedClients, error) {
	out := PurgedClients{Clients: []Client{}, DryRun: o.DryRun}
	if o.UnusedFor < 0 || o.IdleFor < 0 || (o.UnusedFor == 0 && o.IdleFor == 0) {
		return out, failure(ErrInvalid, "clients purge: give --unused-for or --idle-for a positive duration")
	}
	clients, err := s.store.ListClients(ctx)
	if err != nil {
		return out, fmt.Errorf("clients purge: %w", err)
	}
	now := time.Now()
	stale := func(c *store.Client) bool {
		return !c.ExpiresAt.IsZero() && clientlife.Stale(c, now, o.UnusedFor, o.IdleFor)
	}
	var candidates []*store.Client
	for _, c := range clients {
		if stale(c) {
			candidates = append(candidates, c)
		}
	}
	if len(candidates) == 0 {
		return out, nil
	}
	inUse, err := s.clientsWithGrants(ctx)
	if err != nil {
		return out, err
	}
	for _, c := range candidates {
		if inUse[c.ID] {
			out.KeptWithGrants++
			continue
		}
		if o.DryRun {
			out.Clients = append(out.Clients, viewOf(c))
			continue
		}
		cur, err := s.store.GetClient(ctx, c.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue // expired or deleted meanwhile
		}
		if err != nil {
			return out, fmt.Errorf("clients purge: %w", err)
		}
		if !stale(cur) {
			continue // used meanwhile
		}
		if _, err := s.store.RevokeClient(ctx, c.ID); err != nil {
			return out, fmt.Errorf("clients purge: revoke tokens of %s: %w", c.ID, err)
		}
		if err := s.store.DeleteClient(ctx, c.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return out, fmt.Errorf("clients purge: delete %s: %w", c.ID, err)
		}
		s.record(ctx, audit.Event{Name: eventClientPurged, ClientID: c.ID, ClientName: cur.Name,
			Reason: "unused or idle past the purge's limits"})
		out.Clients = append(out.Clients, viewOf(cur))
	}
	return out, nil
}

// clientsWithGrants is the set of client ids that hold a live refresh token or unrevoked access token, read through
// the backup stream (readRecords).
func (s *Service) clientsWithGrants(ctx context.Context) (map[string]bool, error) {
	now := time.Now()
	inUse := map[string]bool{}
	accessOf := map[string]string{} // jti -> client
	revoked := map[string]bool{}
	err := s.readRecords(ctx, func(r store.DumpRecord) error {
		switch {
		case r.Kind == store.DumpRefresh && !r.Used && r.Refresh.ExpiresAt.After(now):
			inUse[r.Refresh.ClientID] = true
		case r.Kind == store.DumpAccess && r.Access.ExpiresAt.After(now):
			accessOf[r.Access.JTI] = r.Access.ClientID
		case r.Kind == store.DumpRevocation:
			revoked[r.Revocation.JTI] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("clients purge: %w", err)
	}
	for jti, client := range accessOf {
		if !revoked[jti] {
			inUse[client] = true
		}
	}
	return inUse, nil
}
