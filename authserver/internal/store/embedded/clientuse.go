package embedded

import (
	"context"
	"fmt"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// TouchClient records a use of a client (see store.Store): only LastUsedAt and ExpiresAt change.
func (s *Store) TouchClient(_ context.Context, id string, usedAt, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	v, ok := s.getLocked(kindClient, id)
	if !ok {
		return fmt.Errorf("client %q: %w", id, store.ErrNotFound)
	}
	c := cloneClient(v.(*store.Client))
	c.LastUsedAt, c.ExpiresAt = usedAt, expiresAt
	return s.commitLocked(put(kindClient, id, c))
}

// UseJTI remembers a single-use identifier until exp (see store.Store).
func (s *Store) UseJTI(_ context.Context, key string, exp time.Time) error {
	if err := store.RequireExpiry("single-use identifier", exp); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if _, ok := s.getLocked(kindJTI, key); ok {
		return fmt.Errorf("single-use identifier: %w", store.ErrReused)
	}
	if !time.Now().Before(exp) {
		return nil // already expired: nothing to remember (the caller refuses expired assertions anyway)
	}
	return s.commitLocked(put(kindJTI, key, &usedJTI{ExpiresAt: exp}))
}
