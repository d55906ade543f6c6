package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// RunPersistence checks that the whole state survives the backend going away and coming back. open returns a fresh
// store; reopen takes it down (embedded: Close, then Open on the same file; Redis: restart the server) and returns
// the store to use afterwards, which may be the same value.
func RunPersistence(t *testing.T, open func(t *testing.T) store.Store, reopen func(t *testing.T, s store.Store) store.Store) {
	ctx := context.Background()
	s := open(t)

	client := newClient()
	require.NoError(t, s.CreateClient(ctx, client))
	client.LastUsedAt, client.ExpiresAt = now(), now().Add(2*time.Hour)
	require.NoError(t, s.TouchClient(ctx, client.ID, client.LastUsedAt, client.ExpiresAt))
	usedJTI := store.HashSecret(id())
	require.NoError(t, s.UseJTI(ctx, usedJTI, now().Add(time.Hour)))
	shortClient := newClient()
	shortClient.ExpiresAt = now().Add(shortTTL)
	require.NoError(t, s.CreateClient(ctx, shortClient))
	req := &store.AuthRequest{ID: id(), ClientID: client.ID, CodeChallenge: "c", Scope: "mcp", CreatedAt: now(),
		ExpiresAt: now().Add(10 * time.Minute)}
	require.NoError(t, s.PutAuthRequest(ctx, req))
	fresh, used := newCode(client.ID), newCode(client.ID)
	require.NoError(t, s.CreateCode(ctx, fresh))
	require.NoError(t, s.CreateCode(ctx, used))
	_, err := s.RedeemCode(ctx, used.Hash)
	require.NoError(t, err)
	fam := used.FamilyID
	r1, r2 := newRefresh(fam, client.ID, alice), newRefresh(fam, client.ID, alice)
	require.NoError(t, s.CreateRefresh(ctx, r1))
	sealed := []byte("sealed successor response")
	_, err = s.RotateRefresh(ctx, r1.Hash, r2, store.Sealed{Data: sealed, ExpiresAt: now().Add(time.Hour)})
	require.NoError(t, err)
	access := newAccess(fam, client.ID, alice.ID)
	require.NoError(t, s.RecordAccess(ctx, access))
	revokedFam, _, revokedAccess := grant(t, s, client.ID, bob)
	require.NoError(t, s.RevokeFamily(ctx, revokedFam))
	jti := id()
	require.NoError(t, s.RevokeAccess(ctx, jti, now().Add(time.Hour)))
	feedBefore, cursorBefore, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	consent := &store.Consent{UserID: alice.ID, ClientID: client.ID, Scope: "mcp", GrantedAt: now(), ExpiresAt: now().Add(time.Hour)}
	require.NoError(t, s.PutConsent(ctx, consent))
	keys := []store.SigningKey{newKey("persisted")}
	ok, err := s.CompareAndSetSigningKeys(ctx, nil, keys)
	require.NoError(t, err)
	require.True(t, ok)

	time.Sleep(time.Until(shortClient.ExpiresAt.Add(waitPast - shortTTL)))
	s = reopen(t, s)
	t.Cleanup(func() { _ = s.Close() })

	got, err := s.GetClient(ctx, client.ID)
	require.NoError(t, err)
	sameJSON(t, client, got)
	_, err = s.GetClient(ctx, shortClient.ID)
	assert.ErrorIs(t, err, store.ErrNotFound, "an expired client does not come back")
	assert.ErrorIs(t, s.UseJTI(ctx, usedJTI, now().Add(time.Hour)), store.ErrReused, "a used assertion stays used")
	gotReq, err := s.GetAuthRequest(ctx, req.ID)
	require.NoError(t, err)
	sameJSON(t, req, gotReq)

	gotCode, err := s.RedeemCode(ctx, used.Hash)
	assert.ErrorIs(t, err, store.ErrReused, "a redeemed code stays redeemed")
	if assert.NotNil(t, gotCode) {
		assert.Equal(t, fam, gotCode.FamilyID)
	}
	gotCode, err = s.RedeemCode(ctx, fresh.Hash)
	require.NoError(t, err)
	sameJSON(t, fresh, gotCode)

	gotUsed, err := s.GetRefresh(ctx, r1.Hash)
	assert.ErrorIs(t, err, store.ErrReused, "a rotated refresh token stays used")
	if assert.NotNil(t, gotUsed) && assert.NotNil(t, gotUsed.Rotation, "a rotation survives the restart") {
		assert.Equal(t, r2.Hash, gotUsed.Rotation.Successor)
		assert.Equal(t, sealed, gotUsed.Rotation.Sealed)
		assert.True(t, r2.IssuedAt.Equal(gotUsed.Rotation.At))
		assert.False(t, gotUsed.Rotation.SuccessorUsed)
	}
	gotRefresh, err := s.GetRefresh(ctx, r2.Hash)
	require.NoError(t, err)
	sameJSON(t, r2, gotRefresh)

	gotAccess, err := storedAccess(t, s, access.JTI)
	require.NoError(t, err)
	sameJSON(t, access, gotAccess)

	for _, j := range []string{jti, revokedAccess.JTI} {
		revoked, err := s.IsRevoked(ctx, j)
		require.NoError(t, err)
		assert.True(t, revoked)
	}
	feedAfter, cursorAfter, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	sameJSON(t, feedBefore, feedAfter, "the feed survives with its sequence numbers")
	assert.Equal(t, cursorBefore, cursorAfter)
	next := id()
	require.NoError(t, s.RevokeAccess(ctx, next, now().Add(time.Hour)))
	entries, _, err := revokedSince(ctx, s, cursorBefore)
	require.NoError(t, err)
	require.Len(t, entries, 1, "numbering continues after the restart")
	assert.Equal(t, next, entries[0].JTI)

	gotConsent, err := s.GetConsent(ctx, consent.UserID, consent.ClientID)
	require.NoError(t, err)
	sameJSON(t, consent, gotConsent)
	gotKeys, err := s.SigningKeys(ctx)
	require.NoError(t, err)
	sameJSON(t, keys, gotKeys)
	assert.Equal(t, keys[0].PrivatePEM, gotKeys[0].PrivatePEM)
}
