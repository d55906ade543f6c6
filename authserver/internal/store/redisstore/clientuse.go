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

// TouchClient records a use of a client (see store.Store). It reads, changes and writes the client under WATCH, so
// a concurrent RFC 7592 update either comes first (and is kept) or makes this transaction run again; the key's TTL
// follows the new expiry.
func (s *Store) TouchClient(ctx context.Context, id string, usedAt, expiresAt time.Time) error {
	key := s.clientKey(id)
	for range 20 {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			b, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				return fmt.Errorf("client %q: %w", id, store.ErrNotFound)
			}
			if err != nil {
				return unavailable("get client", err)
			}
			c := new(store.Client)
			if err := json.Unmarshal(b, c); err != nil {
				return fmt.Errorf("redis: decode client %q: %w", id, err)
			}
			if expired(c.ExpiresAt) {
				return fmt.Errorf("client %q: %w", id, store.ErrNotFound)
			}
			c.LastUsedAt, c.ExpiresAt = usedAt, expiresAt
			args := redis.SetArgs{}
			if t := ttl(expiresAt); t > 0 {
				args.TTL = time.Duration(t) * time.Millisecond
			} else if t == 0 {
				// Expiring now: the record goes (the caller asked for an expiry in the past).
				_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Del(ctx, key)
					p.SRem(ctx, s.clientsKey(), id)
					return nil
				})
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.SetArgs(ctx, key, mustJSON(c), args) // no TTL in args: the key persists (never expires)
				return nil
			})
			return err
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue // changed under us: read it again
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrUnavailable) {
			return unavailable("touch client", err)
		}
		return err
	}
	return unavailable("touch client", errors.New("too much contention"))
}

// UseJTI remembers a single-use identifier until exp (see store.Store): SET NX with the remaining lifetime as TTL.
func (s *Store) UseJTI(ctx context.Context, key string, exp time.Time) error {
	if err := store.RequireExpiry("single-use identifier", exp); err != nil {
		return err
	}
	t := ttl(exp)
	if t == 0 {
		return nil // already expired: nothing to remember
	}
	ok, err := s.rdb.SetNX(ctx, s.k("jti", key), "1", time.Duration(t)*time.Millisecond).Result()
	if err != nil {
		return unavailable("use jti", err)
	}
	if !ok {
		return fmt.Errorf("single-use identifier: %w", store.ErrReused)
	}
	return nil
}
