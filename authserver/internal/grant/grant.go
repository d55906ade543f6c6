// Package grant holds the rules that bound one grant: the chain of refresh tokens rotated from one authorization.
//
// A grant ends MaxAge after the login that started it, whatever its refresh tokens do: each rotated token inherits
// the end (store.RefreshToken.GrantExpiresAt), so a client that keeps refreshing cannot keep access forever, and
// everything checked only at login (organization and team membership) is checked again at least that often.
//
// A grant may refresh at most RefreshLimit times per Window (the access-token lifetime), counted by a leaky bucket
// that travels with the refresh token (RefreshLoad, RefreshLoadAt). Refreshes of one grant are sequential by
// construction (a refresh token is single-use), so the state needs no lock. The limit bounds the access tokens one
// grant holds alive at once (at most 2×RefreshLimit+1), and so what revoking the grant adds to the revocation feed.
package grant

import (
	"errors"
	"math"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Policy bounds grants. The zero value bounds nothing.
type Policy struct {
	MaxAge       time.Duration // a grant ends this long after its login (0: no end)
	RefreshLimit int           // refreshes a grant may make per Window (0: unlimited)
	Window       time.Duration // the period RefreshLimit counts over: the access-token lifetime
}

// Errors of Check.
var (
	// ErrEnded: the grant reached its maximum age; the user must authorize again.
	ErrEnded = errors.New("the grant reached its maximum age")
	// ErrTooFrequent: the grant refreshed RefreshLimit times within Window; retry after the wait Check returns.
	ErrTooFrequent = errors.New("the grant refreshes too often")
)

// State is what the next refresh token of a grant carries.
type State struct {
	End    time.Time // the grant's end (zero: none)
	Load   float64   // refreshes counted, leaking at RefreshLimit per Window
	LoadAt time.Time // when Load was counted
}

// End is when the grant that prev belongs to ends; prev nil (a new grant) or without an end (a token stored before
// grants had one) starts the count at now.
func (p Policy) End(prev *store.RefreshToken, now time.Time) time.Time {
	if prev != nil && !prev.GrantExpiresAt.IsZero() {
		return prev.GrantExpiresAt
	}
	if p.MaxAge <= 0 {
		return time.Time{}
	}
	return now.Add(p.MaxAge)
}

// Check decides whether prev's grant may refresh at now: nil, ErrEnded, or ErrTooFrequent with the time to wait.
func (p Policy) Check(prev *store.RefreshToken, now time.Time) (time.Duration, error) {
	if end := p.End(prev, now); !end.IsZero() && !now.Before(end) {
		return 0, ErrEnded
	}
	if p.RefreshLimit <= 0 || p.Window <= 0 {
		return 0, nil
	}
	load := p.load(prev, now)
	if over := load + 1 - float64(p.RefreshLimit); over > 0 {
		wait := time.Duration(math.Ceil(over * float64(p.Window) / float64(p.RefreshLimit)))
		return max(wait, time.Second), ErrTooFrequent
	}
	return 0, nil
}

// Next is the state the token issued at now carries: prev's grant end, and prev's count plus this refresh (prev
// nil: a new grant, nothing counted).
func (p Policy) Next(prev *store.RefreshToken, now time.Time) State {
	st := State{End: p.End(prev, now)}
	if prev != nil && p.RefreshLimit > 0 && p.Window > 0 {
		st.Load, st.LoadAt = p.load(prev, now)+1, now
	}
	return st
}

// Clamp returns exp, or the grant's end if that comes first: nothing issued for a grant outlives it.
func (st State) Clamp(exp time.Time) time.Time {
	if !st.End.IsZero() && st.End.Before(exp) {
		return st.End
	}
	return exp
}

// load is prev's count as it stands at now, after leaking.
func (p Policy) load(prev *store.RefreshToken, now time.Time) float64 {
	if prev == nil || prev.RefreshLoad <= 0 || prev.RefreshLoadAt.IsZero() {
		return 0
	}
	leaked := now.Sub(prev.RefreshLoadAt).Seconds() * float64(p.RefreshLimit) / p.Window.Seconds()
	return max(0, prev.RefreshLoad-max(0, leaked))
}
