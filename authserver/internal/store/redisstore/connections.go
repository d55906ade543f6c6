package redisstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Connected accounts: one JSON record per user and upstream under conn:<len(user)>:<user>:<upstream>, without TTL,
// and the set conns of every connection's member (<len(user)>:<user>:<upstream>) to list them.

func connectionMember(userID, upstream string) string {
	// The length prefix keeps ("a:b","c") and ("a","b:c") apart.
	return strconv.Itoa(len(userID)) + ":" + userID + ":" + upstream
}

func (s *Store) connectionKey(userID, upstream string) string {
	return s.k("conn", connectionMember(userID, upstream))
}

func (s *Store) PutConnection(ctx context.Context, c *store.Connection) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.connectionKey(c.UserID, c.Upstream), mustJSON(c), 0)
		p.SAdd(ctx, s.k("conns"), connectionMember(c.UserID, c.Upstream))
		return nil
	})
	if err != nil {
		return unavailable("put connection", err)
	}
	return nil
}

func (s *Store) GetConnection(ctx context.Context, userID, upstream string) (*store.Connection, error) {
	return getJSON[store.Connection](ctx, s, s.connectionKey(userID, upstream), "connection to "+upstream)
}

func (s *Store) ListConnections(ctx context.Context, userID string) ([]*store.Connection, error) {
	members, err := s.rdb.SMembers(ctx, s.k("conns")).Result()
	if err != nil {
		return nil, unavailable("list connections", err)
	}
	var keys []string
	for _, m := range members {
		if userID == "" || strings.HasPrefix(m, connectionMember(userID, "")) {
			keys = append(keys, s.k("conn", m))
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, unavailable("list connections", err)
	}
	out := make([]*store.Connection, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // deleted since the set was read
		}
		var c store.Connection
		if err := json.Unmarshal([]byte(str), &c); err != nil {
			return nil, fmt.Errorf("redis: decode connection %s: %w", keys[i], err)
		}
		out = append(out, &c)
	}
	return out, nil
}

// swapConnection: KEYS conn, conns; ARGV the sealed tokens expected (base64, as JSON encodes them), the set member,
// the replacement (” deletes). Returns 0 absent, 1 changed, 2 done.
var swapConnection = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if cjson.decode(v)['sealed'] ~= ARGV[1] then return 1 end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 2
`)

func (s *Store) SwapConnection(ctx context.Context, userID, upstream string, prev []byte, next *store.Connection) error {
	repl := ""
	if next != nil {
		if next.UserID != userID || next.Upstream != upstream {
			return fmt.Errorf("connection to %s: the replacement belongs to another user or upstream", upstream)
		}
		repl = mustJSON(next)
	}
	n, err := swapConnection.Run(ctx, s.rdb, []string{s.connectionKey(userID, upstream), s.k("conns")},
		base64.StdEncoding.EncodeToString(prev), connectionMember(userID, upstream), repl).Int()
	if err != nil {
		return unavailable("swap connection", err)
	}
	switch n {
	case 0:
		return fmt.Errorf("connection to %s: %w", upstream, store.ErrNotFound)
	case 1:
		return fmt.Errorf("connection to %s: %w", upstream, store.ErrConflict)
	}
	return nil
}

func (s *Store) DeleteConnection(ctx context.Context, userID, upstream string) error {
	var del *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, s.connectionKey(userID, upstream))
		p.SRem(ctx, s.k("conns"), connectionMember(userID, upstream))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("delete connection", err)
	}
	if del.Val() == 0 {
		return fmt.Errorf("connection to %s: %w", upstream, store.ErrNotFound)
	}
	return nil
}
