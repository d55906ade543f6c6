package storetest

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// TouchClient changes a client's use and expiry only, moves its expiry both ways (later, never, sooner), and
// answers ErrNotFound for a client that is gone.
func testTouchClient(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newClient()
	c.JWKSURI = "https://client.example.com/jwks.json"
	c.JWKS = json.RawMessage(`{"keys":[]}`)
	c.AuthSigningAlg = "ES256"
	c.ExpiresAt = now().Add(shortTTL)
	require.NoError(t, s.CreateClient(ctx, c))
	got, err := s.GetClient(ctx, c.ID)
	require.NoError(t, err)
	sameJSON(t, c, got, "private_key_jwt fields round-trip")
	assert.True(t, got.LastUsedAt.IsZero(), "a new client was never used")

	used, later := now(), now().Add(time.Hour)
	require.NoError(t, s.TouchClient(ctx, c.ID, used, later))
	want := *c
	want.LastUsedAt, want.ExpiresAt = used, later
	got, err = s.GetClient(ctx, c.ID)
	require.NoError(t, err)
	sameJSON(t, &want, got, "only LastUsedAt and ExpiresAt changed")

	time.Sleep(waitPast)
	_, err = s.GetClient(ctx, c.ID)
	require.NoError(t, err, "the touched client outlives its first expiry")
	list, err := s.ListClients(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.True(t, list[0].LastUsedAt.Equal(used))

	// Never expiring, then expiring soon again: the backend's own expiry follows.
	require.NoError(t, s.TouchClient(ctx, c.ID, now(), time.Time{}))
	got, err = s.GetClient(ctx, c.ID)
	require.NoError(t, err)
	assert.True(t, got.ExpiresAt.IsZero())
	require.NoError(t, s.TouchClient(ctx, c.ID, now(), now().Add(shortTTL)))
	time.Sleep(waitPast)
	_, err = s.GetClient(ctx, c.ID)
	assert.ErrorIs(t, err, store.ErrNotFound, "expired after its shortened lifetime")
	assert.ErrorIs(t, s.TouchClient(ctx, c.ID, now(), now().Add(time.Hour)), store.ErrNotFound, "an expired client is not revived")
	assert.ErrorIs(t, s.TouchClient(ctx, "no-such-client", now(), now().Add(time.Hour)), store.ErrNotFound)
	list, err = s.ListClients(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
}

// A use recorded while the client's metadata is updated keeps both changes, whichever lands first.
func testTouchClientConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newClient()
	require.NoError(t, s.CreateClient(ctx, c))
	used, exp := now(), now().Add(2*time.Hour)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		assert.NoError(t, s.TouchClient(ctx, c.ID, used, exp))
	}()
	go func() {
		defer wg.Done()
		// An RFC 7592 update reads the client and writes it back whole; run it after the touch has had a chance.
		time.Sleep(5 * time.Millisecond)
		cur, err := s.GetClient(ctx, c.ID)
		if !assert.NoError(t, err) {
			return
		}
		cur.Name = "Renamed"
		assert.NoError(t, s.UpdateClient(ctx, cur))
	}()
	wg.Wait()
	got, err := s.GetClient(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, "Renamed", got.Name)
	assert.True(t, got.LastUsedAt.Equal(used), "the recorded use survived the update")
}

func testUseJTI(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := store.HashSecret("https://client.example.com/doc.json " + id())
	require.NoError(t, s.UseJTI(ctx, key, now().Add(shortTTL)))
	assert.ErrorIs(t, s.UseJTI(ctx, key, now().Add(time.Hour)), store.ErrReused, "a second use")
	other := store.HashSecret(id())
	require.NoError(t, s.UseJTI(ctx, other, now().Add(time.Hour)), "another identifier is independent")
	assert.ErrorIs(t, s.UseJTI(ctx, other, now().Add(time.Hour)), store.ErrReused)
	assert.ErrorIs(t, s.UseJTI(ctx, store.HashSecret(id()), time.Time{}), store.ErrNoExpiry)

	time.Sleep(waitPast)
	require.NoError(t, s.UseJTI(ctx, key, now().Add(time.Hour)), "forgotten after its expiry")
	assert.ErrorIs(t, s.UseJTI(ctx, other, now().Add(time.Hour)), store.ErrReused, "the longer-lived one is still remembered")
}

// Of many simultaneous uses of one identifier, exactly one wins.
func testUseJTIConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := store.HashSecret(id())
	var wins, reused atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := s.UseJTI(ctx, key, now().Add(time.Minute)); {
			case err == nil:
				wins.Add(1)
			case isErr(err, store.ErrReused):
				reused.Add(1)
			default:
				t.Errorf("UseJTI: %v", err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
	assert.Equal(t, int32(15), reused.Load())
}
