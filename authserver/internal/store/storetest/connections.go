package storetest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

func newConnection(userID, upstream string) *store.Connection {
	return &store.Connection{UserID: userID, Upstream: upstream, KeyID: "k1", Sealed: []byte(id()), Scope: "repo read:org",
		TokenExpiresAt: now().Add(time.Hour), CreatedAt: now()}
}

// testConnections: one connection per user and upstream, replaced by Put, listed per user or all, deleted once; a
// swap applies only while the record holds what the caller read, so of two concurrent refreshes one wins.
func testConnections(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetConnection(ctx, alice.ID, "gitlab")
	require.ErrorIs(t, err, store.ErrNotFound)
	list, err := s.ListConnections(ctx, "")
	require.NoError(t, err)
	assert.Empty(t, list)

	a1, a2, b1 := newConnection(alice.ID, "gitlab"), newConnection(alice.ID, "linear"), newConnection(bob.ID, "gitlab")
	// A user id that extends another's with the separator must not list as the other's.
	tricky := newConnection(alice.ID+":gitlab", "x")
	for _, c := range []*store.Connection{a1, a2, b1, tricky} {
		require.NoError(t, s.PutConnection(ctx, c))
	}
	got, err := s.GetConnection(ctx, alice.ID, "gitlab")
	require.NoError(t, err)
	sameJSON(t, a1, got)
	list, err = s.ListConnections(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.ElementsMatch(t, []string{"gitlab", "linear"}, []string{list[0].Upstream, list[1].Upstream})
	list, err = s.ListConnections(ctx, "")
	require.NoError(t, err)
	assert.Len(t, list, 4)

	// Put replaces (a reconnect).
	again := newConnection(alice.ID, "gitlab")
	require.NoError(t, s.PutConnection(ctx, again))
	got, err = s.GetConnection(ctx, alice.ID, "gitlab")
	require.NoError(t, err)
	assert.Equal(t, again.Sealed, got.Sealed)

	// Swap: only from what is stored; a stale read gets ErrConflict and changes nothing.
	next := newConnection(alice.ID, "gitlab")
	next.RefreshedAt = now()
	require.ErrorIs(t, s.SwapConnection(ctx, alice.ID, "gitlab", a1.Sealed, next), store.ErrConflict)
	require.NoError(t, s.SwapConnection(ctx, alice.ID, "gitlab", again.Sealed, next))
	got, err = s.GetConnection(ctx, alice.ID, "gitlab")
	require.NoError(t, err)
	sameJSON(t, next, got)
	require.ErrorIs(t, s.SwapConnection(ctx, alice.ID, "nowhere", next.Sealed, nil), store.ErrNotFound)
	require.Error(t, s.SwapConnection(ctx, alice.ID, "gitlab", next.Sealed, newConnection(bob.ID, "gitlab")),
		"a record is never moved to another user")

	// Concurrent swaps from the same read: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan []byte, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newConnection(alice.ID, "gitlab")
			if err := s.SwapConnection(ctx, alice.ID, "gitlab", next.Sealed, c); err == nil {
				wins <- c.Sealed
			} else {
				assert.ErrorIs(t, err, store.ErrConflict)
			}
		}()
	}
	wg.Wait()
	close(wins)
	require.Len(t, wins, 1)
	won := <-wins
	got, err = s.GetConnection(ctx, alice.ID, "gitlab")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(won, got.Sealed))

	// Swap to nil deletes; Delete deletes once.
	require.NoError(t, s.SwapConnection(ctx, alice.ID, "gitlab", won, nil))
	_, err = s.GetConnection(ctx, alice.ID, "gitlab")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.DeleteConnection(ctx, alice.ID, "linear"))
	require.ErrorIs(t, s.DeleteConnection(ctx, alice.ID, "linear"), store.ErrNotFound)
	list, err = s.ListConnections(ctx, alice.ID)
	require.NoError(t, err)
	assert.Empty(t, list)
	list, err = s.ListConnections(ctx, "")
	require.NoError(t, err)
	assert.Len(t, list, 2, "bob's and the other user's remain")
}

// testConnectionsDumpRestore: a dump carries connections exactly as stored (sealed), and a restore brings them back.
func testConnectionsDumpRestore(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	src := openClosed(t, open)
	c := newConnection(alice.ID, "gitlab")
	require.NoError(t, src.PutConnection(ctx, c))
	var buf bytes.Buffer
	require.NoError(t, src.(store.Backup).Dump(ctx, &buf))
	assert.Contains(t, buf.String(), `"kind":"connection"`)

	dst := openClosed(t, open)
	require.NoError(t, dst.(store.Backup).Restore(ctx, bytes.NewReader(buf.Bytes())))
	got, err := dst.GetConnection(ctx, alice.ID, "gitlab")
	require.NoError(t, err)
	sameJSON(t, c, got)
	list, err := dst.ListConnections(ctx, alice.ID)
	require.NoError(t, err)
	assert.Len(t, list, 1)
}
