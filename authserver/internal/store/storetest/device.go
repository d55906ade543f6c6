package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

func newDeviceGrant() *store.DeviceGrant {
	return &store.DeviceGrant{UserCode: id()[:8], SecretHash: store.HashSecret(id()), ClientID: id(), Scope: "mcp",
		Resource: "https://mcp.example.com/mcp", Interval: 5 * time.Second, Status: store.DevicePending,
		ExpiresAt: now().Add(10 * time.Minute)}
}

func testDeviceGrants(t *testing.T, s store.Store) {
	ctx := context.Background()
	g := newDeviceGrant()
	require.NoError(t, s.CreateDeviceGrant(ctx, g))
	assert.ErrorIs(t, s.CreateDeviceGrant(ctx, newDeviceGrantWithCode(g.UserCode)), store.ErrAlreadyExists)
	got, err := s.GetDeviceGrant(ctx, g.UserCode)
	require.NoError(t, err)
	assert.Equal(t, g, got)
	_, err = s.GetDeviceGrant(ctx, "NOSUCHCD")
	assert.ErrorIs(t, err, store.ErrNotFound)

	// Polls: the first is never early; one within the interval is, and grows the interval by 5 s.
	t0 := now()
	p, early, err := s.PollDeviceGrant(ctx, g.UserCode, t0)
	require.NoError(t, err)
	assert.False(t, early)
	assert.Equal(t, store.DevicePending, p.Status)
	_, early, err = s.PollDeviceGrant(ctx, g.UserCode, t0.Add(time.Second))
	require.NoError(t, err)
	assert.True(t, early, "a poll 1 s after the last, with a 5 s interval")
	got, err = s.GetDeviceGrant(ctx, g.UserCode)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, got.Interval)
	_, early, err = s.PollDeviceGrant(ctx, g.UserCode, t0.Add(12*time.Second))
	require.NoError(t, err)
	assert.False(t, early)

	// The user's decision is taken once; the next poll collects it and the grant is gone.
	require.NoError(t, s.DecideDeviceGrant(ctx, g.UserCode, true, alice, "fam-1"))
	assert.ErrorIs(t, s.DecideDeviceGrant(ctx, g.UserCode, false, bob, "fam-2"), store.ErrReused)
	p, _, err = s.PollDeviceGrant(ctx, g.UserCode, t0.Add(30*time.Second))
	require.NoError(t, err)
	assert.Equal(t, store.DeviceApproved, p.Status)
	assert.Equal(t, &alice, p.User)
	assert.Equal(t, "fam-1", p.FamilyID)
	_, _, err = s.PollDeviceGrant(ctx, g.UserCode, t0.Add(40*time.Second))
	assert.ErrorIs(t, err, store.ErrNotFound, "an approved grant is collected once")
	assert.ErrorIs(t, s.DecideDeviceGrant(ctx, "NOSUCHCD", true, alice, "f"), store.ErrNotFound)

	// A denial is collected the same way.
	d := newDeviceGrant()
	require.NoError(t, s.CreateDeviceGrant(ctx, d))
	require.NoError(t, s.DecideDeviceGrant(ctx, d.UserCode, false, bob, ""))
	p, _, err = s.PollDeviceGrant(ctx, d.UserCode, now())
	require.NoError(t, err)
	assert.Equal(t, store.DeviceDenied, p.Status)

	// Expired grants are gone.
	e := newDeviceGrant()
	e.ExpiresAt = now().Add(shortTTL)
	require.NoError(t, s.CreateDeviceGrant(ctx, e))
	time.Sleep(waitPast)
	_, err = s.GetDeviceGrant(ctx, e.UserCode)
	assert.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = s.PollDeviceGrant(ctx, e.UserCode, now())
	assert.ErrorIs(t, err, store.ErrNotFound)
	assert.ErrorIs(t, s.DecideDeviceGrant(ctx, e.UserCode, true, alice, "f"), store.ErrNotFound)
}

func newDeviceGrantWithCode(code string) *store.DeviceGrant {
	g := newDeviceGrant()
	g.UserCode = code
	return g
}

// Two polls racing for an approved grant: exactly one collects it.
func testDeviceGrantsConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	g := newDeviceGrant()
	require.NoError(t, s.CreateDeviceGrant(ctx, g))
	require.NoError(t, s.DecideDeviceGrant(ctx, g.UserCode, true, alice, "fam"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	collected := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _, err := s.PollDeviceGrant(ctx, g.UserCode, now())
			if err == nil && p.Status == store.DeviceApproved {
				mu.Lock()
				collected++
				mu.Unlock()
			} else if err != nil {
				assert.ErrorIs(t, err, store.ErrNotFound)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, collected)
}
