package redisstore

import "github.com/redis/go-redis/v9"

// Lua scripts make each multi-key rule one atomic step on the server. Keys named in KEYS are declared; the revoke
// scripts also build token keys from the prefix (ARGV) because they only learn them from a set. That is allowed
// because every key of one store shares one hash tag (the prefix, e.g. "{mcpgw}:"), so they all live in one slot,
// including under Redis Cluster.

// prelude holds the helpers the scripts share.
const prelude = `
-- extend gives key a TTL of at least ms milliseconds (indexes live as long as their longest member).
local function extend(key, ms)
  ms = tonumber(ms)
  if ms < 1 then ms = 1 end
  local cur = redis.call('PTTL', key)
  if cur == -1 or (cur >= 0 and cur < ms) then redis.call('PEXPIRE', key, ms) end
end

-- publish adds jti to the feed with the next sequence number, unless it is listed already or has expired.
local function publish(feed, feedexp, seqkey, jti, expms, nowms)
  expms = tonumber(expms)
  nowms = tonumber(nowms)
  if expms <= nowms then return 0 end
  local cur = redis.call('HGET', feedexp, jti)
  if cur and tonumber(cur) > nowms then return 0 end
  local seq = redis.call('INCR', seqkey)
  redis.call('ZADD', feed, seq, jti)
  redis.call('HSET', feedexp, jti, expms)
  extend(feed, expms - nowms)
  extend(feedexp, expms - nowms)
  return 1
end

-- revokeFamily deletes the family's refresh tokens and publishes its live access tokens; it returns 1 if there
-- was anything to revoke. The family stays marked (tombstone) so tokens stored into it later are born revoked.
local function revokeFamily(prefix, fam, feed, feedexp, seqkey, nowms, tombms)
  local did = 0
  local famrt = prefix .. 'fam-rt:' .. fam
  local famat = prefix .. 'fam-at:' .. fam
  for _, h in ipairs(redis.call('SMEMBERS', famrt)) do
    if redis.call('DEL', prefix .. 'rt:' .. h) > 0 then did = 1 end
    redis.call('DEL', prefix .. 'rt-used:' .. h, prefix .. 'rt-sealed:' .. h)
  end
  redis.call('DEL', famrt)
  local at = redis.call('HGETALL', famat)
  for i = 1, #at, 2 do
    if publish(feed, feedexp, seqkey, at[i], at[i + 1], nowms) == 1 then did = 1 end
  end
  redis.call('DEL', famat)
  redis.call('SET', prefix .. 'fam-revoked:' .. fam, '1', 'PX', tombms)
  return did
end

-- usedToken answers for a used refresh token: {2, token json, rotation json, 1 if the rotation's successor is used
-- or gone, the sealed response kept at sealedkey or ''}. A rotation that does not parse (a token rotated before
-- rotations were recorded, or restored from a dump, is marked '1') is answered as none: ''.
local function usedToken(prefix, v, used, sealedkey)
  local ok, rot = pcall(cjson.decode, used)
  if not ok or type(rot) ~= 'table' or type(rot['successor']) ~= 'string' then return {2, v, '', 1, ''} end
  local h = rot['successor']
  local spent = 0
  if redis.call('EXISTS', prefix .. 'rt-used:' .. h) == 1 or redis.call('EXISTS', prefix .. 'rt:' .. h) == 0 then
    spent = 1
  end
  return {2, v, used, spent, redis.call('GET', sealedkey) or ''}
end
`

// redeemCode: KEYS code, code-used. Returns {0} unknown, {1, json} redeemed now, {2, json} used before.
var redeemCode = redis.NewScript(prelude + `
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then ttl = 1 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ttl) then return {1, v} end
return {2, v}
`)

// createRefresh: KEYS rt, fam-rt, client-fams, user-fams, fam-revoked; ARGV json, ttl ms, hash, family.
// Returns 1 stored, 0 born revoked (not stored), 2 hash taken.
var createRefresh = redis.NewScript(prelude + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
extend(KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[4])
extend(KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[4])
extend(KEYS[4], ARGV[2])
return 1
`)

// getRefresh: KEYS rt, rt-used, rt-sealed; ARGV prefix. Returns {0} unknown, {1, json} live, or usedToken's answer.
var getRefresh = redis.NewScript(prelude + `
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
local used = redis.call('GET', KEYS[2])
if used then return usedToken(ARGV[1], v, used, KEYS[3]) end
return {1, v}
`)

// rotateRefresh: KEYS old rt, old rt-used, new rt, fam-rt, fam-revoked, client-fams, user-fams, old rt-sealed;
// ARGV new json, new ttl ms, new hash, family, rotation json (kept as the old token's rt-used), prefix, sealed
// response, its ttl ms (0: none).
// Returns {0} unknown, {1, old} rotated, usedToken's answer if used before, {3, old} other family, {4, old} new
// hash taken.
var rotateRefresh = redis.NewScript(prelude + `
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
local used = redis.call('GET', KEYS[2])
if used then return usedToken(ARGV[6], v, used, KEYS[8]) end
if cjson.decode(v)['family_id'] ~= ARGV[4] then return {3, v} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {4, v} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[2], ARGV[5], 'PX', ttl)
if tonumber(ARGV[8]) > 0 then redis.call('SET', KEYS[8], ARGV[7], 'PX', math.min(tonumber(ARGV[8]), ttl)) end
if redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
  redis.call('SADD', KEYS[4], ARGV[3])
  extend(KEYS[4], ARGV[2])
  extend(KEYS[6], ARGV[2])
  extend(KEYS[7], ARGV[2])
end
return {1, v}
`)

// recordAccess: KEYS at, fam-at, client-fams, user-fams, fam-revoked, feed, feed-exp, feed-seq;
// ARGV json, ttl ms, jti, family, exp ms, now ms. Returns 1 stored, 2 jti taken.
var recordAccess = redis.NewScript(prelude + `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 2 end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
  extend(KEYS[2], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[4])
  extend(KEYS[3], ARGV[2])
  redis.call('SADD', KEYS[4], ARGV[4])
  extend(KEYS[4], ARGV[2])
  if redis.call('EXISTS', KEYS[5]) == 1 then
    publish(KEYS[6], KEYS[7], KEYS[8], ARGV[3], ARGV[5], ARGV[6])
  end
end
return 1
`)

// revokeFamily: KEYS feed, feed-exp, feed-seq; ARGV prefix, family, now ms, tombstone ms.
var revokeFamily = redis.NewScript(prelude + `
return revokeFamily(ARGV[1], ARGV[2], KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[4])
`)

// revokeFamilies revokes every family listed in a set (a client's or a user's) and empties it.
// KEYS set, feed, feed-exp, feed-seq; ARGV prefix, now ms, tombstone ms. Returns how many had anything to revoke.
var revokeFamilies = redis.NewScript(prelude + `
local n = 0
for _, fam in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  n = n + revokeFamily(ARGV[1], fam, KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3])
end
redis.call('DEL', KEYS[1])
return n
`)

// revokeAccess: KEYS feed, feed-exp, feed-seq; ARGV jti, exp ms, now ms.
var revokeAccess = redis.NewScript(prelude + `
return publish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
`)

// revokedSince: KEYS feed, feed-exp, feed-seq; ARGV since, now ms, limit (0: no limit). Returns {cursor, more,
// jti1, exp1, seq1, ...} read in one step, so the cursor never runs ahead of the entries returned with it. With a
// limit, the scan goes on past expired entries until it has limit live ones; if entries remain after the last one
// taken, more is 1 and the cursor is that entry's seq, else the cursor is the feed's counter.
var revokedSince = redis.NewScript(`
local counter = tonumber(redis.call('GET', KEYS[3]) or '0')
local limit = tonumber(ARGV[3])
local now = tonumber(ARGV[2])
local out = {counter, 0}
local from = '(' .. ARGV[1]
local taken = 0
while true do
  local entries
  if limit > 0 then
    entries = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
  else
    entries = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES')
  end
  for i = 1, #entries, 2 do
    local exp = redis.call('HGET', KEYS[2], entries[i])
    if exp and tonumber(exp) > now then
      table.insert(out, entries[i])
      table.insert(out, exp)
      table.insert(out, entries[i + 1])
      taken = taken + 1
      if taken == limit then
        if redis.call('ZCOUNT', KEYS[1], '(' .. entries[i + 1], '+inf') > 0 then
          out[1] = tonumber(entries[i + 1])
          out[2] = 1
        end
        return out
      end
    end
  end
  if limit == 0 or #entries < 2 * limit then return out end
  from = '(' .. entries[#entries]
end
`)

// purgeFeed drops expired feed entries. KEYS feed, feed-exp; ARGV now ms. Returns how many.
var purgeFeed = redis.NewScript(`
local n = 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) <= tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[2], all[i])
    redis.call('ZREM', KEYS[1], all[i])
    n = n + 1
  end
end
for _, jti in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('HEXISTS', KEYS[2], jti) == 0 then
    redis.call('ZREM', KEYS[1], jti)
    n = n + 1
  end
end
return n
`)

// putPending stores a request in flight and indexes it by client. KEYS record, pending index; ARGV json, ttl ms,
// index member, exp ms.
var putPending = redis.NewScript(prelude + `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
extend(KEYS[2], ARGV[2])
return 1
`)

// deleteAuthRequest deletes an authorization request and its index entry. KEYS record; ARGV prefix, index member.
var deleteAuthRequest = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local ok, rec = pcall(cjson.decode, v)
  if ok and rec['client_id'] then redis.call('ZREM', ARGV[1] .. 'pending:' .. rec['client_id'], ARGV[2]) end
  redis.call('DEL', KEYS[1])
end
return 0
`)

// countPending drops expired entries of a client's index and counts the rest. KEYS index; ARGV now ms.
var countPending = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
`)

// casKeys: KEYS keys; ARGV expected raw value ("" for none), new value. Returns 1 if replaced.
var casKeys = redis.NewScript(`
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`)

// extendAll gives each KEYS[i] a TTL of at least ARGV[i] ms (restore rebuilds indexes, then sets their TTLs).
var extendAll = redis.NewScript(prelude + `
for i = 1, #KEYS do extend(KEYS[i], ARGV[i]) end
return 0
`)

// restoreFeed: KEYS feed, feed-exp, feed-seq; ARGV now ms, dumped counter, then jti, exp ms, seq for each entry
// (oldest first). A fresh feed (counter 0) takes the dump's numbering; otherwise entries are numbered after it.
var restoreFeed = redis.NewScript(prelude + `
local now = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[3]) or '0')
if cur == 0 then
  local top = tonumber(ARGV[2])
  for i = 3, #ARGV, 3 do
    local exp, seq = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    if exp > now then
      redis.call('ZADD', KEYS[1], seq, ARGV[i])
      redis.call('HSET', KEYS[2], ARGV[i], exp)
      extend(KEYS[1], exp - now)
      extend(KEYS[2], exp - now)
    end
    if seq > top then top = seq end
  end
  if top > 0 then redis.call('SET', KEYS[3], top) end
else
  for i = 3, #ARGV, 3 do publish(KEYS[1], KEYS[2], KEYS[3], ARGV[i], ARGV[i + 1], now) end
end
return 0
`)
