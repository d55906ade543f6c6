package grant

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

func TestGrantEndIsInherited(t *testing.T) {
	p := Policy{MaxAge: 30 * 24 * time.Hour}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first := p.Next(nil, t0)
	assert.Equal(t, t0.Add(p.MaxAge), first.End, "a new grant ends MaxAge after its login")
	tok := &store.RefreshToken{GrantExpiresAt: first.End}
	// However often the grant refreshes, its end does not move.
	for day := 1; day < 30; day++ {
		st := p.Next(tok, t0.Add(time.Duration(day)*24*time.Hour))
		require.Equal(t, first.End, st.End)
		tok = &store.RefreshToken{GrantExpiresAt: st.End}
	}
	_, err := p.Check(tok, t0.Add(29*24*time.Hour))
	assert.NoError(t, err)
	_, err = p.Check(tok, first.End)
	assert.ErrorIs(t, err, ErrEnded)
	// A token from before grants had an end gets one from now.
	legacy := &store.RefreshToken{}
	assert.Equal(t, t0.Add(p.MaxAge), p.End(legacy, t0))
	// Nothing issued outlives the grant.
	assert.Equal(t, first.End, first.Clamp(first.End.Add(time.Hour)))
	assert.Equal(t, t0.Add(time.Hour), first.Clamp(t0.Add(time.Hour)))
	assert.Equal(t, t0.Add(time.Hour), State{}.Clamp(t0.Add(time.Hour)), "no end: nothing clamped")
}

func TestRefreshLimit(t *testing.T) {
	p := Policy{RefreshLimit: 3, Window: time.Hour}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var tok *store.RefreshToken
	st := p.Next(nil, t0)
	assert.Zero(t, st.Load, "a new grant has not refreshed")
	tok = &store.RefreshToken{RefreshLoad: st.Load, RefreshLoadAt: st.LoadAt}
	for i := range 3 {
		_, err := p.Check(tok, t0)
		require.NoError(t, err, "refresh %d", i+1)
		st = p.Next(tok, t0)
		tok = &store.RefreshToken{RefreshLoad: st.Load, RefreshLoadAt: st.LoadAt}
	}
	wait, err := p.Check(tok, t0)
	require.ErrorIs(t, err, ErrTooFrequent)
	assert.Equal(t, 20*time.Minute, wait, "one refresh leaks away every Window/RefreshLimit")
	_, err = p.Check(tok, t0.Add(20*time.Minute))
	assert.NoError(t, err)

	// In any window a grant makes at most 2×limit refreshes, whatever the timing.
	tok, n := &store.RefreshToken{}, 0
	for s := 0; s < 3600; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		if _, err := p.Check(tok, now); err == nil {
			st := p.Next(tok, now)
			tok = &store.RefreshToken{RefreshLoad: st.Load, RefreshLoadAt: st.LoadAt}
			n++
		}
	}
	assert.LessOrEqual(t, n, 6)
	assert.GreaterOrEqual(t, n, 5)

	wait, err = Policy{}.Check(tok, t0)
	assert.NoError(t, err, "no limit configured")
	assert.Zero(t, wait)
}
