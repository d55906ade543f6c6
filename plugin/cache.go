package plugin

import "sync"

// tokenCache holds the verdicts on tokens seen before for one route policy, keyed by the whole Authorization header
// value. Allowed tokens are also in hot, a sync.Map, so that under Yaegi a hit costs one native call and nothing
// else: no lock calls, no hashing, no clock read (cacheLoop removes entries once their deadline passes).
//
// The cache is bounded by memory (cacheMemory), and by a count when cacheSize is set. When it is over either, the
// entries closest to their deadline go first: they have the least use left, and the bookkeeping needs nothing on a
// hit. A revoked jti finds its entries through byJti, so a revocation costs the same whatever the cache holds.
type tokenCache struct {
	hot    sync.Map // header value -> []headerOp of an allowed token
	denied sync.Map // header value -> *cacheEntry of a valid token without the route's scopes (403)

	mu         sync.Mutex
	byDeadline map[int64][]*cacheEntry // deadline second -> entries, so expiry and eviction touch only what they remove
	byJti      map[string]*cacheEntry  // jti -> its entry (others of the same jti chained by sameJti)
	swept      int64                   // every deadline up to this second has been removed
	evictFrom  int64                   // no entry has a deadline before this
	n          int                     // entries
	bytes      int64                   // estimated memory of the entries: entryOverhead + key each
	maxBytes   int64
	maxEntries int
}

// cacheEntry is the verdict on one token for one policy, with the header writes precomputed.
type cacheEntry struct {
	key       string // the Authorization value
	deadline  int64  // unix second from which the entry is stale (exp + skew, rounded down)
	jti       string
	kid       string
	ops       []headerOp
	denied    bool   // a valid token without the required scopes: 403
	challenge string // WWW-Authenticate of the 403
	desc      string
	sameJti   *cacheEntry // another entry of the same jti (the header spelled otherwise, e.g. "bearer")
	gone      bool        // removed: its deadline slot is stale
}

// headerOp sets one request header. A nil vals removes the header for the backend: net/http and Traefik's proxies
// write no line for a nil value, and assigning is cheaper under Yaegi than a branch between set and delete. vals is
// shared by every request of the token; the proxy copies headers before it changes them.
type headerOp struct {
	name string
	vals []string
}

// entryOverhead is the memory of a cached token beyond its Authorization value: the entry, its header writes and
// claim values, the slots in the maps and the sync.Map. TestCacheMemoryPerToken measures it (docs/plugin.md,
// Cache).
const entryOverhead = 900

func newTokenCache(now int64) *tokenCache {
	return &tokenCache{byDeadline: map[int64][]*cacheEntry{}, byJti: map[string]*cacheEntry{}, swept: now - 1,
		evictFrom: now, maxBytes: defaultCacheMemory, maxEntries: maxInt}
}

const maxInt = int(^uint(0) >> 1)

// setLimits bounds the cache to maxBytes of entries and, when maxEntries > 0, to that many entries.
func (c *tokenCache) setLimits(maxBytes int64, maxEntries int) {
	if maxEntries <= 0 {
		maxEntries = maxInt
	}
	c.mu.Lock()
	c.maxBytes, c.maxEntries = maxBytes, maxEntries
	c.evictLocked()
	c.mu.Unlock()
}

// deniedEntry returns the live 403 verdict for key, if any.
func (c *tokenCache) deniedEntry(key string, now int64) *cacheEntry {
	v, ok := c.denied.Load(key)
	if !ok {
		return nil
	}
	if e := v.(*cacheEntry); e.deadline > now {
		return e
	}
	return nil
}

// put caches e under key, unless an entry for key is there or e is past its deadline. It is on the path of every
// first-seen token, so it is a function rather than a method and calls nothing interpreted in the common case:
// under Yaegi a call costs for each expression of the callee, run or not.
func put(c *tokenCache, key string, e *cacheEntry) {
	e.key = key
	dup := true
	c.mu.Lock()
	if e.deadline <= c.swept {
		// Expired already: sweep has passed its second.
	} else if e.denied {
		_, dup = c.denied.LoadOrStore(key, e)
	} else {
		_, dup = c.hot.LoadOrStore(key, e.ops)
	}
	e.gone = dup // not filed, so remove leaves the entry that is
	if !dup {
		c.byDeadline[e.deadline] = append(c.byDeadline[e.deadline], e)
		e.sameJti = c.byJti[e.jti]
		c.byJti[e.jti] = e
		c.n++
		c.bytes += entryOverhead + int64(len(key))
		if c.bytes > c.maxBytes || c.n > c.maxEntries || e.deadline < c.evictFrom {
			c.bound(e)
		}
	}
	c.mu.Unlock()
}

// bound keeps evictFrom below every deadline and evicts when the cache is over its limits. The caller holds mu.
func (c *tokenCache) bound(e *cacheEntry) {
	if e.deadline < c.evictFrom {
		c.evictFrom = e.deadline
	}
	if c.bytes > c.maxBytes || c.n > c.maxEntries {
		c.evictLocked()
	}
}

// evictLocked removes the entries closest to their deadline until the cache is a sixteenth under its limits, so
// that a full cache evicts in batches rather than on every insertion.
func (c *tokenCache) evictLocked() {
	maxBytes, maxEntries := c.maxBytes-c.maxBytes/16, c.maxEntries-c.maxEntries/16
	// Every entry has a deadline from evictFrom on, so the walk ends at the latest with the cache empty.
	for c.n > 0 && (c.bytes > maxBytes || c.n > maxEntries) {
		es := c.byDeadline[c.evictFrom]
		i := 0
		for ; i < len(es) && (c.bytes > maxBytes || c.n > maxEntries); i++ {
			c.removeLocked(es[i])
		}
		if i < len(es) {
			c.byDeadline[c.evictFrom] = es[i:]
			return
		}
		delete(c.byDeadline, c.evictFrom)
		c.evictFrom++
	}
}

// remove drops e.
func (c *tokenCache) remove(e *cacheEntry) {
	c.mu.Lock()
	c.removeLocked(e)
	c.mu.Unlock()
}

// removeLocked drops e unless it is gone already (its deadline slot is left to sweep or eviction).
func (c *tokenCache) removeLocked(e *cacheEntry) {
	if e.gone {
		return
	}
	e.gone = true
	if e.denied {
		c.denied.Delete(e.key)
	} else {
		c.hot.Delete(e.key)
	}
	c.n--
	c.bytes -= entryOverhead + int64(len(e.key))
	if first := c.byJti[e.jti]; first == e {
		if e.sameJti == nil {
			delete(c.byJti, e.jti)
		} else {
			c.byJti[e.jti] = e.sameJti
		}
	} else {
		for p := first; p != nil; p = p.sameJti {
			if p.sameJti == e {
				p.sameJti = e.sameJti
				break
			}
		}
	}
}

// sweep removes the entries whose deadline is now or earlier.
func (c *tokenCache) sweep(now int64) {
	c.mu.Lock()
	c.sweepLocked(now)
	c.mu.Unlock()
}

func (c *tokenCache) sweepLocked(now int64) {
	if now-c.swept > 86400 {
		// Long idle (or clock jump): walk the slots once instead of every second in between.
		for d, es := range c.byDeadline {
			if d <= now {
				for _, e := range es {
					c.removeLocked(e)
				}
				delete(c.byDeadline, d)
			}
		}
	} else {
		for s := c.swept + 1; s <= now; s++ {
			for _, e := range c.byDeadline[s] {
				c.removeLocked(e)
			}
			delete(c.byDeadline, s)
		}
	}
	c.swept = now
	if c.evictFrom <= now {
		c.evictFrom = now + 1
	}
}

// purgeJtis removes the entries of the given jtis (newly revoked).
func (c *tokenCache) purgeJtis(jtis map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for jti := range jtis {
		for e := c.byJti[jti]; e != nil; {
			next := e.sameJti
			c.removeLocked(e)
			e = next
		}
	}
}

// purge removes the entries match selects (retired keys, everything when the feed goes stale): a walk over the
// whole cache, for events much rarer than revocations.
func (c *tokenCache) purge(match func(*cacheEntry) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, es := range c.byDeadline {
		for _, e := range es {
			if !e.gone && match(e) {
				c.removeLocked(e)
			}
		}
	}
}
