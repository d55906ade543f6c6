package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Device grants are one JSON value per user code. Deciding and polling read, change and write it back under WATCH
// (optimistic: a concurrent change makes the transaction fail and it runs again), so the slow-down rule of
// store.DeviceGrant.Poll stays in Go, shared with the embedded store.

func (s *Store) deviceKey(userCode string) string { return s.k("device", userCode) }

func (s *Store) CreateDeviceGrant(ctx context.Context, g *store.DeviceGrant) error {
	if err := store.RequireExpiry("device grant", g.ExpiresAt); err != nil {
		return err
	}
	ok, err := s.set(ctx, s.deviceKey(g.UserCode), g, g.ExpiresAt, true, false, "device grant")
	if err != nil {
		return err
	}
	if !ok {
		if !expired(g.ExpiresAt) {
			return fmt.Errorf("device grant: %w", store.ErrAlreadyExists)
		}
		return nil
	}
	if err := s.indexDevice(ctx, g); err != nil {
		return err
	}
	return nil
}

// indexDevice adds a device grant to its client's index of requests in flight.
func (s *Store) indexDevice(ctx context.Context, g *store.DeviceGrant) error {
	key := s.pendingKey(g.ClientID)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: float64(g.ExpiresAt.UnixMilli()), Member: "device:" + g.UserCode})
		return nil
	})
	if err == nil {
		err = extendAll.Run(ctx, s.rdb, []string{key}, max(ttl(g.ExpiresAt), 1)).Err()
	}
	if err != nil {
		return unavailable("index device grant", err)
	}
	return nil
}

func (s *Store) GetDeviceGrant(ctx context.Context, userCode string) (*store.DeviceGrant, error) {
	g, err := getJSON[store.DeviceGrant](ctx, s, s.deviceKey(userCode), "device grant")
	if err != nil {
		return nil, err
	}
	if expired(g.ExpiresAt) {
		return nil, fmt.Errorf("device grant: %w", store.ErrNotFound)
	}
	return g, nil
}

// updateDevice runs change on the current grant and stores what it returns (nil: delete), atomically.
func (s *Store) updateDevice(ctx context.Context, userCode string, change func(g *store.DeviceGrant) (*store.DeviceGrant, error)) error {
	key := s.deviceKey(userCode)
	for attempt := 0; attempt < 20; attempt++ {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			b, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				return fmt.Errorf("device grant: %w", store.ErrNotFound)
			}
			if err != nil {
				return unavailable("get device grant", err)
			}
			g := new(store.DeviceGrant)
			if err := json.Unmarshal(b, g); err != nil {
				return fmt.Errorf("device grant: corrupt record: %w", err)
			}
			if expired(g.ExpiresAt) {
				return fmt.Errorf("device grant: %w", store.ErrNotFound)
			}
			next, err := change(g)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				if next == nil {
					p.Del(ctx, key)
					p.ZRem(ctx, s.pendingKey(g.ClientID), "device:"+userCode)
				} else {
					p.Set(ctx, key, mustJSON(next), time.Until(next.ExpiresAt))
				}
				return nil
			})
			return err
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue // changed under us: read it again
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrReused) && !errors.Is(err, store.ErrUnavailable) {
			return unavailable("update device grant", err)
		}
		return err
	}
	return unavailable("update device grant", errors.New("too much contention"))
}

func (s *Store) DecideDeviceGrant(ctx context.Context, userCode string, approved bool, user store.User, familyID string) error {
	return s.updateDevice(ctx, userCode, func(g *store.DeviceGrant) (*store.DeviceGrant, error) {
		if g.Status != store.DevicePending {
			return nil, fmt.Errorf("device grant: %w", store.ErrReused)
		}
		g.Status, g.User, g.FamilyID = store.DeviceDenied, &user, familyID
		if approved {
			g.Status = store.DeviceApproved
		}
		return g, nil
	})
}

func (s *Store) PollDeviceGrant(ctx context.Context, userCode string, now time.Time) (*store.DeviceGrant, bool, error) {
	var out *store.DeviceGrant
	var tooEarly bool
	err := s.updateDevice(ctx, userCode, func(g *store.DeviceGrant) (*store.DeviceGrant, error) {
		tooEarly = g.Poll(now)
		out = g
		if g.Status != store.DevicePending {
			return nil, nil // decided: collected by this poll, once
		}
		return g, nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, tooEarly, nil
}
