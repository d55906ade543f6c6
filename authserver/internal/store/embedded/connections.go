package embedded

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// ---- connected accounts

func (s *Store) PutConnection(_ context.Context, c *store.Connection) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	return s.commitLocked(put(kindConn, connectionKey(c.UserID, c.Upstream), cloneConnection(c)))
}

func (s *Store) GetConnection(_ context.Context, userID, upstream string) (*store.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, ok := s.getLocked(kindConn, connectionKey(userID, upstream))
	if !ok {
		return nil, fmt.Errorf("connection to %s: %w", upstream, store.ErrNotFound)
	}
	return cloneConnection(v.(*store.Connection)), nil
}

func (s *Store) ListConnections(_ context.Context, userID string) ([]*store.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	var out []*store.Connection
	for _, v := range s.data[kindConn] {
		if c := v.(*store.Connection); userID == "" || c.UserID == userID {
			out = append(out, cloneConnection(c))
		}
	}
	slices.SortFunc(out, func(a, b *store.Connection) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Upstream, b.Upstream))
	})
	return out, nil
}

func (s *Store) SwapConnection(_ context.Context, userID, upstream string, prev []byte, next *store.Connection) error {
	key := connectionKey(userID, upstream)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	v, ok := s.getLocked(kindConn, key)
	if !ok {
		return fmt.Errorf("connection to %s: %w", upstream, store.ErrNotFound)
	}
	if !bytes.Equal(v.(*store.Connection).Sealed, prev) {
		return fmt.Errorf("connection to %s: %w", upstream, store.ErrConflict)
	}
	if next == nil {
		return s.commitLocked(del(kindConn, key))
	}
	if next.UserID != userID || next.Upstream != upstream {
		return fmt.Errorf("connection to %s: the replacement belongs to another user or upstream", upstream)
	}
	return s.commitLocked(put(kindConn, key, cloneConnection(next)))
}

func (s *Store) DeleteConnection(_ context.Context, userID, upstream string) error {
	key := connectionKey(userID, upstream)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if _, ok := s.getLocked(kindConn, key); !ok {
		return fmt.Errorf("connection to %s: %w", upstream, store.ErrNotFound)
	}
	return s.commitLocked(del(kindConn, key))
}
