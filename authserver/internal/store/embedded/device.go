package embedded

import (
	"context"
	"fmt"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

func cloneDeviceGrant(g *store.DeviceGrant) *store.DeviceGrant {
	cp := *g
	if g.User != nil {
		u := *g.User
		cp.User = &u
	}
	return &cp
}

func (s *Store) CreateDeviceGrant(_ context.Context, g *store.DeviceGrant) error {
	if err := store.RequireExpiry("device grant", g.ExpiresAt); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if _, ok := s.getLocked(kindDevice, g.UserCode); ok {
		return fmt.Errorf("device grant: %w", store.ErrAlreadyExists)
	}
	return s.commitLocked(put(kindDevice, g.UserCode, cloneDeviceGrant(g)))
}

func (s *Store) GetDeviceGrant(_ context.Context, userCode string) (*store.DeviceGrant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, ok := s.getLocked(kindDevice, userCode)
	if !ok {
		return nil, fmt.Errorf("device grant: %w", store.ErrNotFound)
	}
	return cloneDeviceGrant(v.(*store.DeviceGrant)), nil
}

func (s *Store) DecideDeviceGrant(_ context.Context, userCode string, approved bool, user store.User, familyID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	v, ok := s.getLocked(kindDevice, userCode)
	if !ok {
		return fmt.Errorf("device grant: %w", store.ErrNotFound)
	}
	g := cloneDeviceGrant(v.(*store.DeviceGrant))
	if g.Status != store.DevicePending {
		return fmt.Errorf("device grant: %w", store.ErrReused)
	}
	g.Status, g.User, g.FamilyID = store.DeviceDenied, &user, familyID
	if approved {
		g.Status = store.DeviceApproved
	}
	return s.commitLocked(put(kindDevice, userCode, g))
}

func (s *Store) PollDeviceGrant(_ context.Context, userCode string, now time.Time) (*store.DeviceGrant, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, false, err
	}
	v, ok := s.getLocked(kindDevice, userCode)
	if !ok {
		return nil, false, fmt.Errorf("device grant: %w", store.ErrNotFound)
	}
	g := cloneDeviceGrant(v.(*store.DeviceGrant))
	tooEarly := g.Poll(now)
	o := put(kindDevice, userCode, g)
	if g.Status != store.DevicePending {
		o = del(kindDevice, userCode)
	}
	if err := s.commitLocked(o); err != nil {
		return nil, false, err
	}
	return cloneDeviceGrant(g), tooEarly, nil
}
