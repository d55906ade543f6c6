package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// userGrants: KEYS user-fams; ARGV prefix. Returns the records (JSON) of every unused refresh token and every live
// access token of the user's families that are not revoked (revoking deletes both indexes of a family).
var userGrants = redis.NewScript(`
local out = {}
for _, fam in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  for _, h in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'fam-rt:' .. fam)) do
    if redis.call('EXISTS', ARGV[1] .. 'rt-used:' .. h) == 0 then
      local v = redis.call('GET', ARGV[1] .. 'rt:' .. h)
      if v then table.insert(out, v) end
    end
  end
  for _, jti in ipairs(redis.call('HKEYS', ARGV[1] .. 'fam-at:' .. fam)) do
    local v = redis.call('GET', ARGV[1] .. 'at:' .. jti)
    if v then table.insert(out, v) end
  end
end
return out
`)

func (s *Store) UserGrants(ctx context.Context, userID string) ([]store.Grant, error) {
	recs, err := userGrants.Run(ctx, s.rdb, []string{s.k("user-fams", userID)}, s.p).StringSlice()
	if err != nil {
		return nil, unavailable("list grants", err)
	}
	grants := map[string]*store.Grant{}
	for _, r := range recs {
		// A refresh or an access token record: the fields a grant needs are named alike in both.
		var t struct {
			FamilyID string    `json:"family_id"`
			ClientID string    `json:"client_id"`
			Scope    string    `json:"scope"`
			Resource string    `json:"resource"`
			IssuedAt time.Time `json:"issued_at"`
		}
		if err := json.Unmarshal([]byte(r), &t); err != nil {
			return nil, fmt.Errorf("redis: decode a token of user %s: %w", userID, err)
		}
		if t.FamilyID != "" {
			store.AddToGrants(grants, t.FamilyID, t.ClientID, t.Scope, t.Resource, t.IssuedAt)
		}
	}
	return store.SortedGrants(grants), nil
}

// GetAccess reads an access token's record (token exchange).
func (s *Store) GetAccess(ctx context.Context, jti string) (*store.AccessToken, error) {
	return getJSON[store.AccessToken](ctx, s, s.k("at", jti), "access token")
}
