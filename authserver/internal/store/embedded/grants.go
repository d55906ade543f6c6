package embedded

import (
	"context"
	"fmt"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// ---- a user's grants (for the account page)

func (s *Store) UserGrants(_ context.Context, userID string) ([]store.Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	now := time.Now()
	grants := map[string]*store.Grant{}
	for _, v := range s.data[kindRefresh] {
		if r := v.(*refreshRec); !r.Used && !expired(r, now) && r.User.ID == userID {
			store.AddToGrants(grants, r.FamilyID, r.ClientID, r.Scope, r.Resource, r.IssuedAt)
		}
	}
	for jti, v := range s.data[kindAccess] {
		if a := v.(*store.AccessToken); a.UserID == userID && a.FamilyID != "" && !expired(a, now) {
			if _, revoked := s.getLocked(kindRevoked, jti); !revoked {
				store.AddToGrants(grants, a.FamilyID, a.ClientID, a.Scope, a.Resource, a.IssuedAt)
			}
		}
	}
	for f := range grants {
		if _, tomb := s.getLocked(kindFamily, f); tomb {
			delete(grants, f)
		}
	}
	return store.SortedGrants(grants), nil
}

// ---- an access token's record (token exchange)

func (s *Store) GetAccess(_ context.Context, jti string) (*store.AccessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, ok := s.getLocked(kindAccess, jti)
	if !ok {
		return nil, fmt.Errorf("access token %q: %w", jti, store.ErrNotFound)
	}
	return clone(v.(*store.AccessToken)), nil
}
