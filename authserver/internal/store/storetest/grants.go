package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// testUserGrants: a user's live grant families, each with its client and newest scope and time; a rotation stays
// one grant; revoked families and other users' are not listed.
func testUserGrants(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.UserGrants(ctx, alice.ID)
	require.NoError(t, err)
	assert.Empty(t, got)

	famA, r1, _ := grant(t, s, "client-a", alice)
	r2 := newRefresh(famA, "client-a", alice)
	r2.Scope, r2.IssuedAt = "mcp offline_access", now().Add(time.Second)
	_, err = s.RotateRefresh(ctx, r1.Hash, r2, store.Sealed{})
	require.NoError(t, err)
	famB := id()
	onlyAccess := newAccess(famB, "client-b", alice.ID) // a client without refresh tokens
	onlyAccess.IssuedAt = now().Add(-time.Minute)
	require.NoError(t, s.RecordAccess(ctx, onlyAccess))
	famC, _, _ := grant(t, s, "client-c", alice)
	grant(t, s, "client-a", bob)

	got, err = s.UserGrants(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, got, 3)
	byFam := map[string]store.Grant{}
	for _, g := range got {
		byFam[g.FamilyID] = g
	}
	assert.Equal(t, "client-a", byFam[famA].ClientID)
	assert.Equal(t, "mcp offline_access", byFam[famA].Scope, "the newest token's scope")
	assert.True(t, byFam[famA].LastIssuedAt.Equal(r2.IssuedAt), "the newest token's time")
	assert.Equal(t, "client-b", byFam[famB].ClientID)
	assert.Equal(t, famB, got[len(got)-1].FamilyID, "newest use first")

	require.NoError(t, s.RevokeFamily(ctx, famC))
	got, err = s.UserGrants(ctx, alice.ID)
	require.NoError(t, err)
	assert.Len(t, got, 2, "a revoked grant is gone")
	_, err = s.RevokeUser(ctx, alice.ID)
	require.NoError(t, err)
	got, err = s.UserGrants(ctx, alice.ID)
	require.NoError(t, err)
	assert.Empty(t, got)
	got, err = s.UserGrants(ctx, bob.ID)
	require.NoError(t, err)
	assert.Len(t, got, 1)
}

// testGetAccess: an access token's record reads back as recorded, and an unknown jti is not found.
func testGetAccess(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := newAccess(id(), "client-a", alice.ID)
	require.NoError(t, s.RecordAccess(ctx, a))
	got, err := s.GetAccess(ctx, a.JTI)
	require.NoError(t, err)
	sameJSON(t, a, got)
	_, err = s.GetAccess(ctx, id())
	require.ErrorIs(t, err, store.ErrNotFound)
}
