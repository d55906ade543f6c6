package clientlife_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientlife"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func TestAtRegistration(t *testing.T) {
	assert.Equal(t, t0.Add(24*time.Hour), clientlife.Policy{Unused: 24 * time.Hour, Idle: 90 * 24 * time.Hour}.AtRegistration(t0))
	assert.Equal(t, t0.Add(time.Hour), clientlife.Policy{Idle: time.Hour}.AtRegistration(t0), "without the unused rule, idle applies")
	assert.True(t, clientlife.Policy{}.AtRegistration(t0).IsZero(), "both off: never expires")
}

func TestAfterUse(t *testing.T) {
	p := clientlife.Policy{Unused: 24 * time.Hour, Idle: 30 * 24 * time.Hour}
	fresh := &store.Client{IssuedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}

	exp, write := p.AfterUse(fresh, t0.Add(time.Hour))
	assert.True(t, write, "the first use is always recorded")
	assert.Equal(t, t0.Add(time.Hour+30*24*time.Hour), exp, "a used client lives Idle past its use")

	used := &store.Client{IssuedAt: t0, LastUsedAt: t0.Add(time.Hour), ExpiresAt: exp}
	_, write = p.AfterUse(used, t0.Add(90*time.Minute))
	assert.False(t, write, "half an hour later: not worth a write")
	exp2, write := p.AfterUse(used, t0.Add(3*time.Hour))
	assert.True(t, write)
	assert.Equal(t, t0.Add(3*time.Hour+30*24*time.Hour), exp2)

	// Never shortened: a client that was given a longer life (an older, absolute lifetime) keeps it.
	long := &store.Client{IssuedAt: t0, LastUsedAt: t0, ExpiresAt: t0.Add(365 * 24 * time.Hour)}
	exp, _ = p.AfterUse(long, t0.Add(2*time.Hour))
	assert.Equal(t, long.ExpiresAt, exp)

	// Never-expiring clients stay so; with Idle off a used client stops expiring.
	forever := &store.Client{IssuedAt: t0}
	exp, _ = p.AfterUse(forever, t0.Add(time.Hour))
	assert.True(t, exp.IsZero())
	exp, write = clientlife.Policy{Unused: time.Hour}.AfterUse(fresh, t0.Add(time.Minute))
	assert.True(t, exp.IsZero(), "Idle off: a used client never expires")
	assert.True(t, write)

	// A short Idle is recorded more often than hourly.
	short := clientlife.Policy{Idle: 10 * time.Minute}
	c := &store.Client{IssuedAt: t0, LastUsedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	_, write = short.AfterUse(c, t0.Add(2*time.Minute))
	assert.True(t, write, "a tenth of 10 minutes has passed")
}

func TestStale(t *testing.T) {
	now := t0.Add(100 * 24 * time.Hour)
	never := &store.Client{IssuedAt: now.Add(-48 * time.Hour)}
	recent := &store.Client{IssuedAt: now.Add(-time.Hour)}
	idle := &store.Client{IssuedAt: t0, LastUsedAt: now.Add(-40 * 24 * time.Hour)}
	active := &store.Client{IssuedAt: t0, LastUsedAt: now.Add(-time.Hour)}
	day, month := 24*time.Hour, 30*24*time.Hour
	assert.True(t, clientlife.Stale(never, now, day, month))
	assert.False(t, clientlife.Stale(recent, now, day, month))
	assert.True(t, clientlife.Stale(idle, now, day, month))
	assert.False(t, clientlife.Stale(active, now, day, month))
	assert.False(t, clientlife.Stale(never, now, 0, month), "rule off")
	assert.False(t, clientlife.Stale(idle, now, day, 0), "rule off")
}
