package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// ListGrants returns the live grants of a user or of a client, the most recently refreshed first. It reads the
// store through its backup stream (readRecords).
func (s *Service) ListGrants(ctx context.Context, f GrantFilter) ([]Grant, error) {
	if (f.UserID == "") == (f.ClientID == "") {
		return nil, failure(ErrInvalid, "tokens list: name a user (--user) or a client (--client)")
	}
	grants := map[string]*Grant{}
	var access []*store.AccessToken
	revoked := map[string]bool{}
	now := time.Now()
	match := func(uid, cid string) bool {
		return (f.UserID != "" && uid == f.UserID) || (f.ClientID != "" && cid == f.ClientID)
	}
	err := s.readRecords(ctx, func(r store.DumpRecord) error {
		switch {
		case r.Kind == store.DumpRefresh && !r.Used && r.Refresh.ExpiresAt.After(now) && match(r.Refresh.User.ID, r.Refresh.ClientID):
			t := r.Refresh
			grants[t.FamilyID] = &Grant{Family: t.FamilyID, ClientID: t.ClientID, UserID: t.User.ID, Login: t.User.Login,
				Resource: t.Resource, Scope: t.Scope, IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt}
		case r.Kind == store.DumpAccess && r.Access.ExpiresAt.After(now) && match(r.Access.UserID, r.Access.ClientID):
			access = append(access, r.Access)
		case r.Kind == store.DumpRevocation:
			revoked[r.Revocation.JTI] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tokens list: %w", err)
	}
	// Access tokens count toward their grant unless revoked; a grant with only those (no refresh token) is listed too.
	for _, t := range access {
		if revoked[t.JTI] {
			continue
		}
		g := grants[t.FamilyID]
		if g == nil {
			g = &Grant{Family: t.FamilyID, ClientID: t.ClientID, UserID: t.UserID, Resource: t.Resource, Scope: t.Scope}
			grants[t.FamilyID] = g
		}
		g.AccessTokens++
	}
	views := make([]Grant, 0, len(grants))
	for _, g := range grants {
		views = append(views, *g)
	}
	slices.SortFunc(views, func(x, y Grant) int { return y.IssuedAt.Compare(x.IssuedAt) })
	return views, nil
}

// readRecords hands every record of the store to fn, read through its backup stream, so that a listing works the
// same on every backend without an index of its own.
func (s *Service) readRecords(ctx context.Context, fn func(store.DumpRecord) error) error {
	b, ok := s.store.(store.Backup)
	if !ok {
		return errors.New("this store backend cannot list its records")
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(b.Dump(ctx, pw)) }()
	err := store.ReadDump(pr, fn)
	_ = pr.Close() // ends the dump if fn stopped the reading early
	return err
}
