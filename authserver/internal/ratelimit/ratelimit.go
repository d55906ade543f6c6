// Package ratelimit keeps one token bucket per caller address, bounded in memory.
//
// Callers are keyed by AddressKey: an IPv4 address as it is, an IPv6 address by its /64, since one IPv6 host or
// network usually holds a whole /64 and could otherwise take a fresh limit with every address it picks from it.
// The set of buckets is bounded (MaxKeys): buckets that have refilled are dropped first (they are the same as new
// ones), then arbitrary ones, which can only ever give a caller back its full allowance, never take it away.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds a Limiter whose MaxKeys is 0.
const DefaultMaxKeys = 10000

// Limiter allows PerMinute events per key, Burst at once. The zero PerMinute allows everything. Safe for
// concurrent use; the zero value with PerMinute and Burst set is ready.
type Limiter struct {
	PerMinute float64
	Burst     int
	MaxKeys   int // at most this many buckets are kept (0: DefaultMaxKeys)

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// New returns a limiter of perMinute events per key with the given burst (at least 1).
func New(perMinute float64, burst int) *Limiter {
	return &Limiter{PerMinute: perMinute, Burst: burst}
}

// Allow takes one event from key's bucket and reports whether there was one.
func (l *Limiter) Allow(key string) bool {
	if l == nil || l.PerMinute <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	b := l.buckets[key]
	if b == nil {
		if l.buckets == nil {
			l.buckets = map[string]*rate.Limiter{}
		}
		l.makeRoomLocked(now)
		b = rate.NewLimiter(rate.Limit(l.PerMinute/60), l.burst())
		l.buckets[key] = b
	}
	return b.AllowN(now, 1)
}

// Len is the number of buckets kept.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func (l *Limiter) burst() int { return max(1, l.Burst) }

func (l *Limiter) maxKeys() int {
	if l.MaxKeys > 0 {
		return l.MaxKeys
	}
	return DefaultMaxKeys
}

// makeRoomLocked frees space for one more bucket when the set is full: refilled buckets go first, then arbitrary
// ones until a tenth of the room is free, so that the scan runs once per many new keys, not on each.
func (l *Limiter) makeRoomLocked(now time.Time) {
	limit := l.maxKeys()
	if len(l.buckets) < limit {
		return
	}
	full := float64(l.burst())
	for k, b := range l.buckets {
		if b.TokensAt(now) >= full {
			delete(l.buckets, k)
		}
	}
	target := limit - max(1, limit/10)
	for k := range l.buckets { // map order is random: no caller can arrange to be kept
		if len(l.buckets) <= target {
			break
		}
		delete(l.buckets, k)
	}
}

// AddressKey is the key of a caller's address: an IPv4 address (IPv4-mapped IPv6 included) as it is, an IPv6
// address as its /64 prefix. Something that is not an address is its own key.
func AddressKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}
