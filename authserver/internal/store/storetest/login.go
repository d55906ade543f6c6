package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// oidcUser is a user of an OpenID provider: a namespaced id and the provider's name.
var oidcUser = store.User{ID: "google:110248495921238986420", Login: "carol@example.com", Name: "Carol",
	Email: "carol@example.com", Provider: "google"}

// testLoginState: what the login step keeps with an authorization request (the provider chosen, the PKCE verifier
// and nonce of the round trip to it) survives a read, is replaced by the next Put, and an attempt can be finished
// only once (UseJTI under the key the login service uses: one winner, across nodes). The provider of a user
// travels with codes, refresh tokens and device grants, so refresh knows which provider's rules apply.
func testLoginState(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := &store.AuthRequest{
		ID: id(), ClientID: id(), RedirectURI: "http://127.0.0.1:33418/cb", State: "xyz", CodeChallenge: "abc",
		Scope: "mcp", Resource: "http://localhost:8080/everything/mcp", CreatedAt: now(), ExpiresAt: now().Add(10 * time.Minute),
	}
	require.NoError(t, s.PutAuthRequest(ctx, r))
	got, err := s.GetAuthRequest(ctx, r.ID)
	require.NoError(t, err)
	assert.Zero(t, got.Login, "no provider chosen yet")

	r.Login = store.LoginAttempt{Provider: "google", Verifier: id() + id(), Nonce: id()}
	require.NoError(t, s.PutAuthRequest(ctx, r))
	got, err = s.GetAuthRequest(ctx, r.ID)
	require.NoError(t, err)
	sameJSON(t, r, got)
	assert.Equal(t, r.Login, got.Login)

	// Choosing again (another provider) replaces the attempt; returning from the provider clears it.
	r.Login = store.LoginAttempt{Provider: "github", Verifier: id() + id(), Nonce: id()}
	require.NoError(t, s.PutAuthRequest(ctx, r))
	got, err = s.GetAuthRequest(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, "github", got.Login.Provider)
	attempt := got.Login
	u := oidcUser
	r.Login, r.User = store.LoginAttempt{}, &u
	require.NoError(t, s.PutAuthRequest(ctx, r))
	got, err = s.GetAuthRequest(ctx, r.ID)
	require.NoError(t, err)
	assert.Zero(t, got.Login)
	require.NotNil(t, got.User)
	assert.Equal(t, oidcUser, *got.User)

	// An attempt finishes once, however many callbacks arrive.
	key := store.HashSecret("idp-login\x00" + attempt.Nonce)
	require.NoError(t, s.UseJTI(ctx, key, r.ExpiresAt))
	assert.ErrorIs(t, s.UseJTI(ctx, key, r.ExpiresAt), store.ErrReused)

	// The provider rides along with the user in a code, a refresh token and a device grant.
	c := newCode(id())
	c.User = oidcUser
	require.NoError(t, s.CreateCode(ctx, c))
	redeemed, err := s.RedeemCode(ctx, c.Hash)
	require.NoError(t, err)
	assert.Equal(t, oidcUser, redeemed.User)

	rt := newRefresh(id(), id(), oidcUser)
	require.NoError(t, s.CreateRefresh(ctx, rt))
	gotRT, err := s.GetRefresh(ctx, rt.Hash)
	require.NoError(t, err)
	assert.Equal(t, oidcUser, gotRT.User)

	g := &store.DeviceGrant{UserCode: "LOGINSTATE", SecretHash: store.HashSecret(id()), ClientID: id(), Scope: "mcp",
		Resource: "http://localhost:8080/everything/mcp", Interval: 5 * time.Second, Status: store.DevicePending,
		ExpiresAt: now().Add(10 * time.Minute)}
	require.NoError(t, s.CreateDeviceGrant(ctx, g))
	require.NoError(t, s.DecideDeviceGrant(ctx, g.UserCode, true, oidcUser, id()))
	polled, _, err := s.PollDeviceGrant(ctx, g.UserCode, time.Now())
	require.NoError(t, err)
	require.NotNil(t, polled.User)
	assert.Equal(t, oidcUser, *polled.User)

	// A user record from before there were several providers has none: it reads back without one.
	old := newRefresh(id(), id(), alice)
	require.NoError(t, s.CreateRefresh(ctx, old))
	gotOld, err := s.GetRefresh(ctx, old.Hash)
	require.NoError(t, err)
	assert.Empty(t, gotOld.User.Provider)
}
