package plugin

import "sync"

// tokenCache holds the verdicts on tokens seen before for one route policy, keyed by the whole Authorization header
// value. Allowed tokens are also in hot, a sync.Map, so that under Yaegi a hit costs one native call and nothing
// else: no lock calls, no hashing, no clock read (cacheLoop removes entries once their deadline passes).
type tokenCache struct {
	hot sync.Map // header value -> []headerOp of an allowed token

	mu         sync.Mutex
	all        map[string]*cacheEntry // every entry, 403 verdicts too
	byDeadline map[int64][]string     // deadline second -> keys, so expiry touches only what expires
	swept      int64                  // every deadline up to this second has been removed
	max        int
}

// cacheEntry is the verdict on one token for one policy, with the header writes precomputed.
type cacheEntry struct {
	deadline  int64 // unix second from which the entry is stale (exp + skew, rounded down)
	jti       string
	kid       string
	ops       []headerOp
	denied    bool   // a valid token without the required scopes: 403
	challenge string // WWW-Authenticate of the 403
	desc      string
}

// headerOp sets one request header. A nil vals removes the header for the backend: net/http and Traefik's proxies
// write no line for a nil value, and assigning is cheaper under Yaegi than a branch between set and delete. vals is
// shared by every request of the token; the proxy copies headers before it changes them.
type headerOp struct {
	name string
	vals []string
}

func newTokenCache(now int64) *tokenCache {
	return &tokenCache{all: map[string]*cacheEntry{}, byDeadline: map[int64][]string{}, swept: now - 1, max: 10000}
}

func (c *tokenCache) setMax(n int) {
	c.mu.Lock()
	c.max = n
	c.mu.Unlock()
}

// get returns the live entry for key, allowed or denied.
func (c *tokenCache) get(key string, now int64) *cacheEntry {
	c.mu.Lock()
	e := c.all[key]
	c.mu.Unlock()
	if e == nil || e.deadline <= now {
		return nil
	}
	return e
}

func (c *tokenCache) put(key string, e *cacheEntry, now int64) {
	c.mu.Lock()
	if len(c.all) >= c.max {
		c.makeRoomLocked(now)
	}
	if e.deadline > c.swept {
		c.all[key] = e
		c.byDeadline[e.deadline] = append(c.byDeadline[e.deadline], key)
		if !e.denied {
			c.hot.Store(key, e.ops)
		}
	}
	c.mu.Unlock()
}

// makeRoomLocked drops expired entries and, if the cache is still full of live tokens, about a tenth at random
// (map order), which needs no bookkeeping on hits.
func (c *tokenCache) makeRoomLocked(now int64) {
	c.sweepLocked(now)
	drop := len(c.all) - c.max*9/10
	for k := range c.all {
		if drop <= 0 {
			break
		}
		c.removeLocked(k)
		drop--
	}
}

func (c *tokenCache) remove(key string) {
	c.mu.Lock()
	c.removeLocked(key)
	c.mu.Unlock()
}

func (c *tokenCache) removeLocked(key string) {
	delete(c.all, key)
	c.hot.Delete(key)
}

// sweep removes the entries whose deadline is now or earlier.
func (c *tokenCache) sweep(now int64) {
	c.mu.Lock()
	c.sweepLocked(now)
	c.mu.Unlock()
}

func (c *tokenCache) sweepLocked(now int64) {
	if now-c.swept > 86400 {
		// Long idle (or clock jump): walk everything once instead of every second in between.
		for k, e := range c.all {
			if e.deadline <= now {
				c.removeLocked(k)
			}
		}
		for d := range c.byDeadline {
			if d <= now {
				delete(c.byDeadline, d)
			}
		}
		c.swept = now
		return
	}
	for s := c.swept + 1; s <= now; s++ {
		for _, k := range c.byDeadline[s] {
			if e := c.all[k]; e != nil && e.deadline <= now {
				c.removeLocked(k)
			}
		}
		delete(c.byDeadline, s)
	}
	c.swept = now
}

// purge removes the entries match selects (revoked jtis, retired keys).
func (c *tokenCache) purge(match func(*cacheEntry) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.all {
		if match(e) {
			c.removeLocked(k)
		}
	}
}
