// Package clientlife decides how long a dynamically registered client lives. Open registration (RFC 7591) lets
// every fresh connection of some clients (Claude.ai) register anew, so registrations pile up unless the ones nobody
// uses go away: a client that never obtains a token expires soon after registering (Unused), and one that stops
// being used expires some time after its last use (Idle). Using a client (any token issued to it) moves its expiry
// forward. The server applies the rules as clients register and get tokens; `authserver clients purge` applies
// them, or stricter ones, to what is stored.
package clientlife

import (
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Policy is the pair of lifetimes. Zero durations turn a rule off.
type Policy struct {
	// Unused: a client that has never obtained a token expires this long after registering. 0: the Idle rule
	// applies from registration.
	Unused time.Duration
	// Idle: a client expires this long after it last obtained a token. 0: a used client never expires.
	Idle time.Duration
}

// AtRegistration is the expiry of a client registered at now (zero: never).
func (p Policy) AtRegistration(now time.Time) time.Time {
	switch {
	case p.Unused > 0:
		return now.Add(p.Unused)
	case p.Idle > 0:
		return now.Add(p.Idle)
	}
	return time.Time{}
}

// AfterUse is the expiry of client c used at now, and whether it is worth writing: uses are recorded at most about
// once per touchStep (an hour, or a tenth of Idle if that is shorter), so a busy client does not cost a store write
// per token. A client registered without expiry (by an operator, or with both rules off) keeps none, and a use never
// brings an expiry closer than it was.
func (p Policy) AfterUse(c *store.Client, now time.Time) (expires time.Time, write bool) {
	if c.ExpiresAt.IsZero() {
		expires = time.Time{}
	} else if p.Idle > 0 {
		expires = now.Add(p.Idle)
		if c.ExpiresAt.After(expires) {
			expires = c.ExpiresAt
		}
	}
	step := time.Hour
	if p.Idle > 0 {
		step = min(step, p.Idle/10)
	}
	write = c.LastUsedAt.IsZero() || now.Sub(c.LastUsedAt) >= step || (expires.IsZero() != c.ExpiresAt.IsZero())
	return expires, write
}

// Stale reports whether a stored client is one a purge removes: never used and registered more than unusedFor ago,
// or last used more than idleFor ago. A zero duration never matches. Clients registered before uses were recorded
// look never used; callers keep those that still hold live grants.
func Stale(c *store.Client, now time.Time, unusedFor, idleFor time.Duration) bool {
	if c.LastUsedAt.IsZero() {
		return unusedFor > 0 && now.Sub(c.IssuedAt) > unusedFor
	}
	return idleFor > 0 && now.Sub(c.LastUsedAt) > idleFor
}
