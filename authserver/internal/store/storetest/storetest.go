// Package storetest is the contract suite every store.Store backend must pass: one set of rules, checked the same
// way against the embedded store and Redis.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Short lifetimes for the expiry checks. The suite waits past them; it never asserts how long anything took.
const (
	shortTTL = 1 * time.Second
	waitPast = shortTTL + 600*time.Millisecond
)

// Run runs the whole contract suite. open must return a fresh, empty store for each call (Redis: a fresh key prefix
// or database); the suite closes what it opens.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Clients", func(t *testing.T) { testClients(t, openClosed(t, open)) })
	t.Run("TouchClient", func(t *testing.T) { testTouchClient(t, openClosed(t, open)) })
	t.Run("TouchClientConcurrentUpdate", func(t *testing.T) { testTouchClientConcurrent(t, openClosed(t, open)) })
	t.Run("UseJTI", func(t *testing.T) { testUseJTI(t, openClosed(t, open)) })
	t.Run("UseJTIConcurrent", func(t *testing.T) { testUseJTIConcurrent(t, openClosed(t, open)) })
	t.Run("AuthRequests", func(t *testing.T) { testAuthRequests(t, openClosed(t, open)) })
	t.Run("PendingCount", func(t *testing.T) { testPendingCount(t, openClosed(t, open)) })
	t.Run("Codes", func(t *testing.T) { testCodes(t, openClosed(t, open)) })
	t.Run("CodesConcurrentRedeem", func(t *testing.T) { testCodesConcurrent(t, openClosed(t, open)) })
	t.Run("Refresh", func(t *testing.T) { testRefresh(t, openClosed(t, open)) })
	t.Run("RefreshConcurrentRotate", func(t *testing.T) { testRefreshConcurrent(t, openClosed(t, open)) })
	t.Run("RefreshRotation", func(t *testing.T) { testRefreshRotation(t, openClosed(t, open)) })
	t.Run("Access", func(t *testing.T) { testAccess(t, openClosed(t, open)) })
	t.Run("RevokeFamily", func(t *testing.T) { testRevokeFamily(t, openClosed(t, open)) })
	t.Run("RevokeClient", func(t *testing.T) { testRevokeClient(t, openClosed(t, open)) })
	t.Run("RevokeUser", func(t *testing.T) { testRevokeUser(t, openClosed(t, open)) })
	t.Run("Feed", func(t *testing.T) { testFeed(t, openClosed(t, open)) })
	t.Run("FeedPages", func(t *testing.T) { testFeedPages(t, openClosed(t, open)) })
	t.Run("Consents", func(t *testing.T) { testConsents(t, openClosed(t, open)) })
	t.Run("LoginPins", func(t *testing.T) { testLoginPins(t, openClosed(t, open)) })
	t.Run("Connections", func(t *testing.T) { testConnections(t, openClosed(t, open)) })
	t.Run("GetAccess", func(t *testing.T) { testGetAccess(t, openClosed(t, open)) })
	t.Run("UserGrants", func(t *testing.T) { testUserGrants(t, openClosed(t, open)) })
	t.Run("ConnectionsDumpRestore", func(t *testing.T) { testConnectionsDumpRestore(t, open) })
	t.Run("LoginState", func(t *testing.T) { testLoginState(t, openClosed(t, open)) })
	t.Run("DeviceGrants", func(t *testing.T) { testDeviceGrants(t, openClosed(t, open)) })
	t.Run("DeviceGrantsConcurrentPoll", func(t *testing.T) { testDeviceGrantsConcurrent(t, openClosed(t, open)) })
	t.Run("SigningKeys", func(t *testing.T) { testSigningKeys(t, openClosed(t, open)) })
	t.Run("SigningKeysConcurrentFirst", func(t *testing.T) { testSigningKeysConcurrent(t, openClosed(t, open)) })
	t.Run("NoExpiry", func(t *testing.T) { testNoExpiry(t, openClosed(t, open)) })
	t.Run("Ping", func(t *testing.T) { require.NoError(t, openClosed(t, open).Ping(context.Background())) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, openClosed(t, open)) })
	t.Run("DumpRestore", func(t *testing.T) { testDumpRestore(t, open) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, open(t)) })
}

func openClosed(t *testing.T, open func(t *testing.T) store.Store) store.Store {
	s := open(t)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// ---- fixtures

func id() string { return rand.Text() }

// now is a UTC time rounded to the millisecond, so it survives any encoding a backend uses.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func newClient() *store.Client {
	return &store.Client{
		ID:                    id(),
		SecretHash:            store.HashSecret(id()),
		RegistrationTokenHash: store.HashSecret(id()),
		RedirectURIs:          []string{"http://127.0.0.1/callback", "https://app.example.com/cb"},
		TokenEndpointAuth:     "client_secret_post",
		GrantTypes:            []string{"authorization_code", "refresh_token"},
		Name:                  "Test client",
		Scope:                 "mcp",
		Metadata:              map[string]any{"client_name": "Test client", "software_id": "x", "flag": true, "n": 3.0},
		IssuedAt:              now(),
		ExpiresAt:             now().Add(time.Hour),
	}
}

var alice = store.User{ID: "1001", Login: "alice", Name: "Alice", Email: "alice@example.com"}
var bob = store.User{ID: "1002", Login: "bob"}

func newCode(clientID string) *store.AuthCode {
	return &store.AuthCode{
		Hash: store.HashSecret(id()), ClientID: clientID, RedirectURI: "http://127.0.0.1/callback",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Scope: "mcp",
		Resource: "http://localhost:8080/everything/mcp", User: alice, FamilyID: id(), ExpiresAt: now().Add(time.Minute),
	}
}

func newRefresh(familyID, clientID string, user store.User) *store.RefreshToken {
	return &store.RefreshToken{
		Hash: store.HashSecret(id()), FamilyID: familyID, ClientID: clientID, User: user, Scope: "mcp",
		Resource: "http://localhost:8080/everything/mcp", IssuedAt: now(), ExpiresAt: now().Add(time.Hour),
		// The grant's end and refresh count travel with every token (package grant); every backend keeps them.
		GrantExpiresAt: now().Add(30 * 24 * time.Hour), RefreshLoad: 2.5, RefreshLoadAt: now().Add(-time.Minute),
	}
}

func newAccess(familyID, clientID, userID string) *store.AccessToken {
	return &store.AccessToken{
		JTI: id(), FamilyID: familyID, ClientID: clientID, UserID: userID, Scope: "mcp",
		Resource: "http://localhost:8080/everything/mcp", IssuedAt: now(), ExpiresAt: now().Add(time.Hour),
	}
}

// sameJSON compares records by their JSON form, which is what every backend must preserve.
func sameJSON(t *testing.T, want, got any, msgAndArgs ...any) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(w), string(g), msgAndArgs...)
}

// revokedSince reads the whole feed after since: one page without a bound, which never says more follows.
func revokedSince(ctx context.Context, s store.Store, since int64) ([]store.Revocation, int64, error) {
	entries, cursor, more, err := s.RevokedPage(ctx, since, 0)
	if err == nil && more {
		err = fmt.Errorf("RevokedPage(%d, no limit) says more entries follow its %d", since, len(entries))
	}
	return entries, cursor, err
}

func feedJTIs(t *testing.T, s store.Store, since int64) []string {
	t.Helper()
	entries, _, err := revokedSince(context.Background(), s, since)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.JTI)
	}
	return out
}

// ---- subtests

func testClients(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := newClient(), newClient()
	b.SecretHash, b.TokenEndpointAuth, b.Metadata, b.ExpiresAt = "", "none", nil, time.Time{} // public, never expires

	require.NoError(t, s.CreateClient(ctx, a))
	require.NoError(t, s.CreateClient(ctx, b))
	assert.ErrorIs(t, s.CreateClient(ctx, &store.Client{ID: a.ID, IssuedAt: now()}), store.ErrAlreadyExists)

	got, err := s.GetClient(ctx, a.ID)
	require.NoError(t, err)
	sameJSON(t, a, got)
	got, err = s.GetClient(ctx, b.ID)
	require.NoError(t, err)
	sameJSON(t, b, got)
	assert.True(t, got.ExpiresAt.IsZero(), "a client without expiry keeps a zero ExpiresAt")

	// A caller editing what it got back must not change the store.
	got.Name = "changed behind the store's back"
	got.RedirectURIs[0] = "https://evil.example"
	again, err := s.GetClient(ctx, b.ID)
	require.NoError(t, err)
	sameJSON(t, b, again)

	_, err = s.GetClient(ctx, "no-such-client")
	assert.ErrorIs(t, err, store.ErrNotFound)

	a.Name = "Renamed"
	a.RedirectURIs = []string{"https://new.example.com/cb"}
	require.NoError(t, s.UpdateClient(ctx, a))
	got, err = s.GetClient(ctx, a.ID)
	require.NoError(t, err)
	sameJSON(t, a, got)
	assert.ErrorIs(t, s.UpdateClient(ctx, &store.Client{ID: "no-such-client"}), store.ErrNotFound)

	list, err := s.ListClients(ctx)
	require.NoError(t, err)
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	assert.ElementsMatch(t, []string{a.ID, b.ID}, ids)

	require.NoError(t, s.DeleteClient(ctx, a.ID))
	_, err = s.GetClient(ctx, a.ID)
	assert.ErrorIs(t, err, store.ErrNotFound)
	assert.ErrorIs(t, s.DeleteClient(ctx, a.ID), store.ErrNotFound)
	list, err = s.ListClients(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, b.ID, list[0].ID)

	// A deleted client's id can be registered again.
	require.NoError(t, s.CreateClient(ctx, a))
}

func testAuthRequests(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := &store.AuthRequest{
		ID: id(), ClientID: id(), RedirectURI: "http://127.0.0.1:33418/cb", State: "xyz", CodeChallenge: "abc",
		Scope: "mcp", Resource: "http://localhost:8080/everything/mcp", CreatedAt: now(), ExpiresAt: now().Add(10 * time.Minute),
	}
	require.NoError(t, s.PutAuthRequest(ctx, r))
	got, err := s.GetAuthRequest(ctx, r.ID)
	require.NoError(t, err)
	sameJSON(t, r, got)
	assert.Nil(t, got.User)

	// Put replaces: the request gains its user after login.
	u := alice
	r.User, r.CSRFToken = &u, id()
	require.NoError(t, s.PutAuthRequest(ctx, r))
	got, err = s.GetAuthRequest(ctx, r.ID)
	require.NoError(t, err)
	sameJSON(t, r, got)
	require.NotNil(t, got.User)
	got.User.Login = "mallory"
	again, err := s.GetAuthRequest(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, "alice", again.User.Login, "the returned user must be a copy")

	_, err = s.GetAuthRequest(ctx, "nope")
	assert.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, s.DeleteAuthRequest(ctx, r.ID))
	_, err = s.GetAuthRequest(ctx, r.ID)
	assert.ErrorIs(t, err, store.ErrNotFound)
	assert.NoError(t, s.DeleteAuthRequest(ctx, r.ID), "deleting an absent request is not an error")
}

func testCodes(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newCode(id())
	require.NoError(t, s.CreateCode(ctx, c))
	assert.ErrorIs(t, s.CreateCode(ctx, c), store.ErrAlreadyExists)

	got, err := s.RedeemCode(ctx, c.Hash)
	require.NoError(t, err)
	sameJSON(t, c, got)

	got, err = s.RedeemCode(ctx, c.Hash)
	require.ErrorIs(t, err, store.ErrReused)
	require.NotNil(t, got, "a reused code comes back with its record, so its family can be revoked")
	sameJSON(t, c, got)
	assert.Equal(t, c.FamilyID, got.FamilyID)

	// Still reused on a third try, and re-creating the code cannot reset it.
	_, err = s.RedeemCode(ctx, c.Hash)
	assert.ErrorIs(t, err, store.ErrReused)
	assert.ErrorIs(t, s.CreateCode(ctx, c), store.ErrAlreadyExists)

	got, err = s.RedeemCode(ctx, store.HashSecret("never issued"))
	assert.ErrorIs(t, err, store.ErrNotFound)
	assert.Nil(t, got)
}

func testCodesConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newCode(id())
	require.NoError(t, s.CreateCode(ctx, c))
	const n = 50
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		wins, reuses     int
		other            []error
		start            = make(chan struct{})
		familiesReturned = map[string]bool{}
	)
	for range n {
		wg.Go(func() {
			<-start
			got, err := s.RedeemCode(ctx, c.Hash)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				familiesReturned[got.FamilyID] = true
			case isErr(err, store.ErrReused) && got != nil:
				reuses++
				familiesReturned[got.FamilyID] = true
			default:
				other = append(other, err)
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Empty(t, other)
	assert.Equal(t, 1, wins, "exactly one concurrent redemption wins")
	assert.Equal(t, n-1, reuses)
	assert.Equal(t, map[string]bool{c.FamilyID: true}, familiesReturned)
}

func testRefresh(t *testing.T, s store.Store) {
	ctx := context.Background()
	fam, client := id(), id()
	r1 := newRefresh(fam, client, alice)
	require.NoError(t, s.CreateRefresh(ctx, r1))
	assert.ErrorIs(t, s.CreateRefresh(ctx, r1), store.ErrAlreadyExists)
	got, err := s.GetRefresh(ctx, r1.Hash)
	require.NoError(t, err)
	sameJSON(t, r1, got)

	r2 := newRefresh(fam, client, alice)
	old, err := s.RotateRefresh(ctx, r1.Hash, r2, store.Sealed{})
	require.NoError(t, err)
	sameJSON(t, r1, old, "RotateRefresh returns the token it consumed")

	got, err = s.GetRefresh(ctx, r1.Hash)
	assert.ErrorIs(t, err, store.ErrReused)
	require.NotNil(t, got)
	assert.Equal(t, fam, got.FamilyID)
	got, err = s.GetRefresh(ctx, r2.Hash)
	require.NoError(t, err)
	sameJSON(t, r2, got)

	// Replay of the used token: nothing stored, the old record returned.
	r3 := newRefresh(fam, client, alice)
	old, err = s.RotateRefresh(ctx, r1.Hash, r3, store.Sealed{})
	require.ErrorIs(t, err, store.ErrReused)
	require.NotNil(t, old)
	sameJSON(t, r1, old)
	_, err = s.GetRefresh(ctx, r3.Hash)
	assert.ErrorIs(t, err, store.ErrNotFound, "a replayed rotation must not store its new token")

	// The chain goes on from the live token.
	old, err = s.RotateRefresh(ctx, r2.Hash, r3, store.Sealed{})
	require.NoError(t, err)
	assert.Equal(t, r2.Hash, old.Hash)

	// A rotation may not move a token into another family.
	_, err = s.RotateRefresh(ctx, r3.Hash, newRefresh(id(), client, alice), store.Sealed{})
	assert.Error(t, err)
	_, err = s.GetRefresh(ctx, r3.Hash)
	assert.NoError(t, err, "a refused rotation leaves the token usable")

	_, err = s.GetRefresh(ctx, store.HashSecret("never issued"))
	assert.ErrorIs(t, err, store.ErrNotFound)
	old, err = s.RotateRefresh(ctx, store.HashSecret("never issued"), newRefresh(fam, client, alice), store.Sealed{})
	assert.ErrorIs(t, err, store.ErrNotFound)
	assert.Nil(t, old)
}

func testRefreshConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	fam, client := id(), id()
	r1 := newRefresh(fam, client, alice)
	require.NoError(t, s.CreateRefresh(ctx, r1))
	const n = 50
	nexts := make([]*store.RefreshToken, n)
	errs := make([]error, n)
	olds := make([]*store.RefreshToken, n)
	for i := range nexts {
		nexts[i] = newRefresh(fam, client, alice)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			old, err := s.RotateRefresh(ctx, r1.Hash, nexts[i],
				store.Sealed{Data: []byte("sealed " + strconv.Itoa(i)), ExpiresAt: now().Add(time.Minute)})
			if err == nil || isErr(err, store.ErrReused) {
				if assert.NotNil(t, old) {
					assert.Equal(t, r1.Hash, old.Hash)
				}
			}
			errs[i], olds[i] = err, old
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			assert.Equal(t, -1, winner, "two rotations of one token both won")
			winner = i
		} else {
			assert.ErrorIs(t, err, store.ErrReused)
		}
	}
	require.NotEqual(t, -1, winner, "no rotation won")
	// Every loser learns the one successor the winner stored, with what the winner sealed for it.
	for i, old := range olds {
		if i == winner || old == nil {
			continue
		}
		if assert.NotNil(t, old.Rotation, "a losing rotation returns the winning one") {
			assert.Equal(t, nexts[winner].Hash, old.Rotation.Successor)
			assert.Equal(t, []byte("sealed "+strconv.Itoa(winner)), old.Rotation.Sealed)
			assert.False(t, old.Rotation.SuccessorUsed)
		}
	}
	for i, next := range nexts {
		_, err := s.GetRefresh(ctx, next.Hash)
		if i == winner {
			assert.NoError(t, err, "the winner's token is stored")
		} else {
			assert.ErrorIs(t, err, store.ErrNotFound, "a loser's token is not stored")
		}
	}
}

// testRefreshRotation checks what a used refresh token tells about its rotation: the successor, what was sealed for
// it, and whether the successor has been used in turn.
func testRefreshRotation(t *testing.T, s store.Store) {
	ctx := context.Background()
	fam, client := id(), id()
	r1, r2 := newRefresh(fam, client, alice), newRefresh(fam, client, alice)
	require.NoError(t, s.CreateRefresh(ctx, r1))
	sealed := []byte("sealed for r1's holder")
	old, err := s.RotateRefresh(ctx, r1.Hash, r2, store.Sealed{Data: sealed, ExpiresAt: now().Add(time.Minute)})
	require.NoError(t, err)
	assert.Nil(t, old.Rotation, "a token consumed now has no earlier rotation")

	wantRotation := func(t *testing.T, got *store.RefreshToken, successorUsed bool) {
		t.Helper()
		require.NotNil(t, got)
		require.NotNil(t, got.Rotation, "a used token tells what it was rotated to")
		assert.True(t, r2.IssuedAt.Equal(got.Rotation.At), "rotated at the successor's issue time")
		assert.Equal(t, r2.Hash, got.Rotation.Successor)
		assert.Equal(t, sealed, got.Rotation.Sealed)
		assert.Equal(t, successorUsed, got.Rotation.SuccessorUsed)
	}
	got, err := s.GetRefresh(ctx, r1.Hash)
	require.ErrorIs(t, err, store.ErrReused)
	wantRotation(t, got, false)
	got, err = s.GetRefresh(ctx, r2.Hash)
	require.NoError(t, err)
	assert.Nil(t, got.Rotation, "a live token has no rotation")

	// A second rotation of r1 changes nothing: the first one's successor and sealed response stay.
	r3 := newRefresh(fam, client, alice)
	got, err = s.RotateRefresh(ctx, r1.Hash, r3, store.Sealed{Data: []byte("another"), ExpiresAt: now().Add(time.Minute)})
	require.ErrorIs(t, err, store.ErrReused)
	wantRotation(t, got, false)
	_, err = s.GetRefresh(ctx, r3.Hash)
	assert.ErrorIs(t, err, store.ErrNotFound)

	// Once the successor is rotated in turn, both reads say so.
	_, err = s.RotateRefresh(ctx, r2.Hash, r3, store.Sealed{})
	require.NoError(t, err)
	got, err = s.GetRefresh(ctx, r1.Hash)
	require.ErrorIs(t, err, store.ErrReused)
	wantRotation(t, got, true)
	got, err = s.RotateRefresh(ctx, r1.Hash, newRefresh(fam, client, alice), store.Sealed{})
	require.ErrorIs(t, err, store.ErrReused)
	wantRotation(t, got, true)
	got, err = s.GetRefresh(ctx, r2.Hash)
	require.ErrorIs(t, err, store.ErrReused)
	require.NotNil(t, got.Rotation)
	assert.Equal(t, r3.Hash, got.Rotation.Successor)
	assert.Empty(t, got.Rotation.Sealed, "nothing sealed: nothing returned")

	// A successor that is gone (here: expired) counts as used. A sealed response is kept only until its own
	// expiry, the used token and its rotation as long as the token.
	qfam := id()
	q1, q2, p1, p2 := newRefresh(qfam, client, alice), newRefresh(qfam, client, alice), newRefresh(qfam, client, alice),
		newRefresh(qfam, client, alice)
	q2.ExpiresAt = now().Add(shortTTL)
	require.NoError(t, s.CreateRefresh(ctx, q1))
	require.NoError(t, s.CreateRefresh(ctx, p1))
	_, err = s.RotateRefresh(ctx, q1.Hash, q2, store.Sealed{Data: sealed, ExpiresAt: now().Add(time.Minute)})
	require.NoError(t, err)
	_, err = s.RotateRefresh(ctx, p1.Hash, p2, store.Sealed{Data: sealed, ExpiresAt: now().Add(shortTTL)})
	require.NoError(t, err)
	time.Sleep(waitPast)
	_, err = s.PurgeExpired(ctx)
	require.NoError(t, err)
	got, err = s.GetRefresh(ctx, q1.Hash)
	require.ErrorIs(t, err, store.ErrReused)
	require.NotNil(t, got.Rotation)
	assert.True(t, got.Rotation.SuccessorUsed, "an expired successor counts as used")
	got, err = s.GetRefresh(ctx, p1.Hash)
	require.ErrorIs(t, err, store.ErrReused)
	require.NotNil(t, got.Rotation, "the rotation outlives its sealed response")
	assert.Equal(t, p2.Hash, got.Rotation.Successor)
	assert.False(t, got.Rotation.SuccessorUsed)
	assert.Empty(t, got.Rotation.Sealed, "the sealed response is gone after its expiry")

	// Revoking the family ends it all: the used token is unknown, its successor too.
	require.NoError(t, s.RevokeFamily(ctx, fam))
	_, err = s.GetRefresh(ctx, r1.Hash)
	assert.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetRefresh(ctx, r3.Hash)
	assert.ErrorIs(t, err, store.ErrNotFound)
}

func testAccess(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := newAccess(id(), id(), alice.ID)
	require.NoError(t, s.RecordAccess(ctx, a))
	got, err := storedAccess(t, s, a.JTI)
	require.NoError(t, err)
	sameJSON(t, a, got)
	_, err = storedAccess(t, s, "no-such-jti")
	assert.ErrorIs(t, err, store.ErrNotFound)
	revoked, err := s.IsRevoked(ctx, a.JTI)
	require.NoError(t, err)
	assert.False(t, revoked)
}

func testRevokeFamily(t *testing.T, s store.Store) {
	ctx := context.Background()
	fam, other, client := id(), id(), id()
	r1, r2 := newRefresh(fam, client, alice), newRefresh(fam, client, alice)
	require.NoError(t, s.CreateRefresh(ctx, r1))
	_, err := s.RotateRefresh(ctx, r1.Hash, r2, store.Sealed{})
	require.NoError(t, err)
	a1, a2 := newAccess(fam, client, alice.ID), newAccess(fam, client, alice.ID)
	require.NoError(t, s.RecordAccess(ctx, a1))
	require.NoError(t, s.RecordAccess(ctx, a2))
	ro, ao := newRefresh(other, client, alice), newAccess(other, client, alice.ID)
	require.NoError(t, s.CreateRefresh(ctx, ro))
	require.NoError(t, s.RecordAccess(ctx, ao))

	require.NoError(t, s.RevokeFamily(ctx, fam))
	for _, h := range []string{r1.Hash, r2.Hash} {
		_, err := s.GetRefresh(ctx, h)
		assert.ErrorIs(t, err, store.ErrNotFound, "a revoked family's refresh tokens are gone")
	}
	_, err = s.RotateRefresh(ctx, r2.Hash, newRefresh(fam, client, alice), store.Sealed{})
	assert.ErrorIs(t, err, store.ErrNotFound)
	for _, a := range []*store.AccessToken{a1, a2} {
		revoked, err := s.IsRevoked(ctx, a.JTI)
		require.NoError(t, err)
		assert.True(t, revoked)
		got, err := storedAccess(t, s, a.JTI)
		require.NoError(t, err, "revoked access tokens stay known (introspection)")
		assert.Equal(t, a.JTI, got.JTI)
	}
	assert.ElementsMatch(t, []string{a1.JTI, a2.JTI}, feedJTIs(t, s, 0))
	entries, _, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	for _, e := range entries {
		want := map[string]time.Time{a1.JTI: a1.ExpiresAt, a2.JTI: a2.ExpiresAt}[e.JTI]
		assert.True(t, want.Equal(e.ExpiresAt), "feed entry carries its token's exp: want %v got %v", want, e.ExpiresAt)
	}

	// The other family is untouched.
	_, err = s.GetRefresh(ctx, ro.Hash)
	assert.NoError(t, err)
	revoked, err := s.IsRevoked(ctx, ao.JTI)
	require.NoError(t, err)
	assert.False(t, revoked)

	// Revoking twice is fine and publishes nothing new.
	_, cursor, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	require.NoError(t, s.RevokeFamily(ctx, fam))
	require.NoError(t, s.RevokeFamily(ctx, "never-existed"))
	_, cursor2, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	assert.Equal(t, cursor, cursor2)
	assert.Len(t, feedJTIs(t, s, 0), 2)

	// Tokens stored for the family after its revocation (a code redeemed twice at once: the loser revokes while the
	// winner is still issuing) are born revoked.
	late := newAccess(fam, client, alice.ID)
	require.NoError(t, s.RecordAccess(ctx, late))
	revoked, err = s.IsRevoked(ctx, late.JTI)
	require.NoError(t, err)
	assert.True(t, revoked, "an access token recorded into a revoked family is revoked")
	lateRefresh := newRefresh(fam, client, alice)
	require.NoError(t, s.CreateRefresh(ctx, lateRefresh))
	_, err = s.GetRefresh(ctx, lateRefresh.Hash)
	assert.ErrorIs(t, err, store.ErrNotFound, "a refresh token created into a revoked family is not usable")
}

// grant stores a family with one refresh and one access token.
func grant(t *testing.T, s store.Store, client string, user store.User) (fam string, r *store.RefreshToken, a *store.AccessToken) {
	t.Helper()
	fam = id()
	r, a = newRefresh(fam, client, user), newAccess(fam, client, user.ID)
	require.NoError(t, s.CreateRefresh(context.Background(), r))
	require.NoError(t, s.RecordAccess(context.Background(), a))
	return fam, r, a
}

func assertRevoked(t *testing.T, s store.Store, r *store.RefreshToken, a *store.AccessToken, want bool) {
	t.Helper()
	_, err := s.GetRefresh(context.Background(), r.Hash)
	if want {
		assert.ErrorIs(t, err, store.ErrNotFound, "refresh token of a revoked family")
	} else {
		assert.NoError(t, err, "refresh token of a live family")
	}
	revoked, err := s.IsRevoked(context.Background(), a.JTI)
	require.NoError(t, err)
	assert.Equal(t, want, revoked, "access token %s revoked", a.JTI)
}

func testRevokeClient(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, d := id(), id()
	_, r1, a1 := grant(t, s, c, alice)
	_, r2, a2 := grant(t, s, c, bob)
	// A family with only an access token left (its refresh token expired or was never issued) counts too.
	a3 := newAccess(id(), c, alice.ID)
	require.NoError(t, s.RecordAccess(ctx, a3))
	_, r4, a4 := grant(t, s, d, alice)

	n, err := s.RevokeClient(ctx, c)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assertRevoked(t, s, r1, a1, true)
	assertRevoked(t, s, r2, a2, true)
	revoked, err := s.IsRevoked(ctx, a3.JTI)
	require.NoError(t, err)
	assert.True(t, revoked)
	assertRevoked(t, s, r4, a4, false)
	assert.ElementsMatch(t, []string{a1.JTI, a2.JTI, a3.JTI}, feedJTIs(t, s, 0))

	n, err = s.RevokeClient(ctx, c)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "nothing left to revoke")
	n, err = s.RevokeClient(ctx, "no-such-client")
	require.NoError(t, err)
	assert.Equal(t, 0, n)
}

func testRevokeUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, d := id(), id()
	_, r1, a1 := grant(t, s, c, alice)
	_, r2, a2 := grant(t, s, d, alice)
	_, r3, a3 := grant(t, s, c, bob)

	n, err := s.RevokeUser(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assertRevoked(t, s, r1, a1, true)
	assertRevoked(t, s, r2, a2, true)
	assertRevoked(t, s, r3, a3, false)

	n, err = s.RevokeUser(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, 0, n)
}

func testFeed(t *testing.T, s store.Store) {
	ctx := context.Background()
	entries, cursor0, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	assert.Empty(t, entries)
	assert.GreaterOrEqual(t, cursor0, int64(0))

	exp := now().Add(time.Hour)
	jtis := []string{id(), id(), id()}
	for _, j := range jtis {
		require.NoError(t, s.RevokeAccess(ctx, j, exp))
	}
	entries, cursor, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	require.Len(t, entries, 3)
	for i, e := range entries {
		assert.Equal(t, jtis[i], e.JTI, "oldest first")
		assert.True(t, exp.Equal(e.ExpiresAt), "exp kept: want %v got %v", exp, e.ExpiresAt)
		if i > 0 {
			assert.Greater(t, e.Seq, entries[i-1].Seq, "Seq increases")
		}
	}
	assert.Equal(t, entries[2].Seq, cursor, "the cursor is the highest Seq")
	assert.Greater(t, cursor, cursor0)

	more, cursor2, err := revokedSince(ctx, s, cursor)
	require.NoError(t, err)
	assert.Empty(t, more)
	assert.Equal(t, cursor, cursor2)

	tail, _, err := revokedSince(ctx, s, entries[0].Seq)
	require.NoError(t, err)
	require.Len(t, tail, 2)
	assert.Equal(t, jtis[1], tail[0].JTI)
	assert.Equal(t, jtis[2], tail[1].JTI)

	// Revoking the same jti again adds no entry.
	require.NoError(t, s.RevokeAccess(ctx, jtis[0], exp))
	_, cursor3, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	assert.Equal(t, cursor, cursor3)
	assert.Len(t, feedJTIs(t, s, 0), 3)

	// A token that has already expired has nothing to revoke.
	gone := id()
	require.NoError(t, s.RevokeAccess(ctx, gone, now().Add(-time.Minute)))
	assert.NotContains(t, feedJTIs(t, s, 0), gone)

	for _, j := range jtis {
		revoked, err := s.IsRevoked(ctx, j)
		require.NoError(t, err)
		assert.True(t, revoked)
	}
	revoked, err := s.IsRevoked(ctx, id())
	require.NoError(t, err)
	assert.False(t, revoked)

	// A new entry after a reader's cursor is what that reader gets next.
	late := id()
	require.NoError(t, s.RevokeAccess(ctx, late, exp))
	next, cursor4, err := revokedSince(ctx, s, cursor)
	require.NoError(t, err)
	require.Len(t, next, 1)
	assert.Equal(t, late, next[0].JTI)
	assert.Equal(t, next[0].Seq, cursor4)
}

// testFeedPages: a reader of a long feed gets it in bounded pages and follows the cursor to the end, so no answer
// grows with the feed.
func testFeedPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	exp := now().Add(time.Hour)
	var jtis []string
	for i := range 7 {
		j := id()
		jtis = append(jtis, j)
		require.NoError(t, s.RevokeAccess(ctx, j, exp))
		if i == 2 {
			// An expired entry in the middle is skipped without costing a page its place.
			require.NoError(t, s.RevokeAccess(ctx, id(), now().Add(shortTTL)))
		}
	}
	_, counter, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	time.Sleep(waitPast)

	var got []string
	since, pages := int64(0), 0
	for {
		page, cursor, more, err := s.RevokedPage(ctx, since, 3)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 3, "a page holds at most the limit")
		pages++
		for _, e := range page {
			assert.Greater(t, e.Seq, since)
			got = append(got, e.JTI)
		}
		if !more {
			assert.Equal(t, counter, cursor, "the last page's cursor is the feed's counter")
			break
		}
		require.NotEmpty(t, page)
		assert.Equal(t, page[len(page)-1].Seq, cursor, "a page with more after it ends at its cursor")
		since = cursor
		require.Less(t, pages, 10)
	}
	assert.Equal(t, jtis, got, "every live entry once, oldest first")
	assert.Equal(t, 3, pages)

	// A page that ends exactly at the last entry says there is no more.
	page, cursor, more, err := s.RevokedPage(ctx, 0, 100)
	require.NoError(t, err)
	assert.Len(t, page, 7)
	assert.False(t, more)
	assert.Equal(t, counter, cursor)
	all, _, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	page, _, more, err = s.RevokedPage(ctx, all[3].Seq, 3)
	require.NoError(t, err)
	assert.Len(t, page, 3)
	assert.False(t, more, "the last three entries fill the page and nothing follows")
	page, cursor, more, err = s.RevokedPage(ctx, counter, 3)
	require.NoError(t, err)
	assert.Empty(t, page)
	assert.False(t, more)
	assert.Equal(t, counter, cursor)
}

// testLoginPins: the first account seen under a login keeps it (logins change hands); case does not matter.
func testLoginPins(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.PinLogin(ctx, "Octo", "1001")
	require.NoError(t, err)
	assert.Equal(t, "1001", got, "the first account seen is pinned")
	got, err = s.PinLogin(ctx, "octo", "1001")
	require.NoError(t, err)
	assert.Equal(t, "1001", got)
	got, err = s.PinLogin(ctx, "OCTO", "2002")
	require.NoError(t, err)
	assert.Equal(t, "1001", got, "another account under the same login finds the first one's pin")
	got, err = s.PinLogin(ctx, "other", "2002")
	require.NoError(t, err)
	assert.Equal(t, "2002", got)

	// One winner when two accounts race for a fresh login.
	var wg sync.WaitGroup
	results := make([]string, 20)
	for i := range results {
		wg.Go(func() {
			r, err := s.PinLogin(ctx, "contested", strconv.Itoa(i))
			assert.NoError(t, err)
			results[i] = r
		})
	}
	wg.Wait()
	for _, r := range results {
		assert.Equal(t, results[0], r, "every caller sees the same pin")
	}
}

// testPendingCount: the requests in flight of a client are counted, so the server can cap them.
func testPendingCount(t *testing.T, s store.Store) {
	ctx := context.Background()
	client, other := id(), id()
	count := func(c string) int {
		t.Helper()
		n, err := s.PendingCount(ctx, c)
		require.NoError(t, err)
		return n
	}
	assert.Zero(t, count(client))
	req := func(c string, ttl time.Duration) *store.AuthRequest {
		return &store.AuthRequest{ID: id(), ClientID: c, RedirectURI: "http://127.0.0.1/cb", CodeChallenge: "c", Scope: "mcp",
			CreatedAt: now(), ExpiresAt: now().Add(ttl)}
	}
	a, b, short := req(client, time.Hour), req(client, time.Hour), req(client, shortTTL)
	for _, r := range []*store.AuthRequest{a, b, short, req(other, time.Hour)} {
		require.NoError(t, s.PutAuthRequest(ctx, r))
	}
	require.NoError(t, s.PutAuthRequest(ctx, a), "replacing a request (after login) does not count it twice")
	g := newDeviceGrant()
	g.ClientID = client
	require.NoError(t, s.CreateDeviceGrant(ctx, g))
	assert.Equal(t, 4, count(client), "three authorization requests and a device grant")
	assert.Equal(t, 1, count(other))

	require.NoError(t, s.DeleteAuthRequest(ctx, b.ID))
	assert.Equal(t, 3, count(client), "a finished request no longer counts")
	require.NoError(t, s.DecideDeviceGrant(ctx, g.UserCode, true, alice, id()))
	_, _, err := s.PollDeviceGrant(ctx, g.UserCode, now())
	require.NoError(t, err)
	assert.Equal(t, 2, count(client), "a collected device grant no longer counts")
	time.Sleep(waitPast)
	assert.Equal(t, 1, count(client), "an expired request no longer counts")
	require.NoError(t, s.DeleteAuthRequest(ctx, a.ID))
	assert.Zero(t, count(client))
}

func testConsents(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := &store.Consent{UserID: alice.ID, ClientID: id(), Scope: "mcp", Resource: "http://localhost:8080/everything/mcp",
		GrantedAt: now(), ExpiresAt: now().Add(time.Hour)}
	require.NoError(t, s.PutConsent(ctx, c))
	got, err := s.GetConsent(ctx, c.UserID, c.ClientID)
	require.NoError(t, err)
	sameJSON(t, c, got)

	_, err = s.GetConsent(ctx, bob.ID, c.ClientID)
	assert.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetConsent(ctx, c.UserID, id())
	assert.ErrorIs(t, err, store.ErrNotFound)
	// Ids are not concatenated ambiguously.
	_, err = s.GetConsent(ctx, c.UserID+":"+c.ClientID[:3], c.ClientID[3:])
	assert.ErrorIs(t, err, store.ErrNotFound)

	c.Scope = "mcp admin"
	require.NoError(t, s.PutConsent(ctx, c))
	got, err = s.GetConsent(ctx, c.UserID, c.ClientID)
	require.NoError(t, err)
	assert.Equal(t, "mcp admin", got.Scope)
}

func newKey(kid string) store.SigningKey {
	return store.SigningKey{KID: kid, Alg: "ES256", PrivatePEM: "-----BEGIN PRIVATE KEY-----\n" + kid + "\n-----END PRIVATE KEY-----\n",
		PublishedAt: now(), ActiveAt: now().Add(time.Minute)}
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	keys, err := s.SigningKeys(ctx)
	require.NoError(t, err)
	assert.Empty(t, keys)

	k1, k2 := newKey("k1"), newKey("k2")
	ok, err := s.CompareAndSetSigningKeys(ctx, nil, []store.SigningKey{k1})
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = s.CompareAndSetSigningKeys(ctx, nil, []store.SigningKey{k2})
	require.NoError(t, err)
	assert.False(t, ok, "the set is no longer empty")

	keys, err = s.SigningKeys(ctx)
	require.NoError(t, err)
	sameJSON(t, []store.SigningKey{k1}, keys)

	ok, err = s.CompareAndSetSigningKeys(ctx, keys, []store.SigningKey{k1, k2})
	require.NoError(t, err)
	assert.True(t, ok)

	// A stale view (k1 before it was retired) loses.
	retired := k1
	retired.RetireAt = now().Add(time.Hour)
	ok, err = s.CompareAndSetSigningKeys(ctx, []store.SigningKey{k1, k2}, []store.SigningKey{retired, k2})
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = s.CompareAndSetSigningKeys(ctx, []store.SigningKey{k1, k2}, []store.SigningKey{k2})
	require.NoError(t, err)
	assert.False(t, ok, "prev differs in RetireAt")

	keys, err = s.SigningKeys(ctx)
	require.NoError(t, err)
	sameJSON(t, []store.SigningKey{retired, k2}, keys)
	keys[0].KID = "edited"
	again, err := s.SigningKeys(ctx)
	require.NoError(t, err)
	assert.Equal(t, "k1", again[0].KID, "the returned set is a copy")
}

func testSigningKeysConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 10
	won := make([]bool, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			ok, err := s.CompareAndSetSigningKeys(ctx, nil, []store.SigningKey{newKey("node" + string(rune('a'+i)))})
			assert.NoError(t, err)
			won[i] = ok
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	var winner string
	for i, ok := range won {
		if ok {
			winners++
			winner = "node" + string(rune('a'+i))
		}
	}
	require.Equal(t, 1, winners, "exactly one first key is created")
	keys, err := s.SigningKeys(ctx)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.Equal(t, winner, keys[0].KID)
}

// testExpiry stores one short-lived record of each kind, waits past its expiry once, and checks that none comes back.
func testExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	soon := now().Add(shortTTL)

	shortClient, longClient := newClient(), newClient()
	shortClient.ExpiresAt = soon
	require.NoError(t, s.CreateClient(ctx, shortClient))
	require.NoError(t, s.CreateClient(ctx, longClient))
	req := &store.AuthRequest{ID: id(), ClientID: longClient.ID, CreatedAt: now(), ExpiresAt: soon}
	require.NoError(t, s.PutAuthRequest(ctx, req))
	code := newCode(longClient.ID)
	code.ExpiresAt = soon
	require.NoError(t, s.CreateCode(ctx, code))
	usedCode := newCode(longClient.ID)
	usedCode.ExpiresAt = soon
	require.NoError(t, s.CreateCode(ctx, usedCode))
	_, err := s.RedeemCode(ctx, usedCode.Hash)
	require.NoError(t, err)
	fam := id()
	refresh := newRefresh(fam, longClient.ID, alice)
	refresh.ExpiresAt = soon
	require.NoError(t, s.CreateRefresh(ctx, refresh))
	access := newAccess(fam, longClient.ID, alice.ID)
	access.ExpiresAt = soon
	require.NoError(t, s.RecordAccess(ctx, access))
	shortJTI, longJTI := id(), id()
	require.NoError(t, s.RevokeAccess(ctx, shortJTI, soon))
	require.NoError(t, s.RevokeAccess(ctx, longJTI, now().Add(time.Hour)))
	_, cursorBefore, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	consent := &store.Consent{UserID: alice.ID, ClientID: longClient.ID, Scope: "mcp", GrantedAt: now(), ExpiresAt: soon}
	require.NoError(t, s.PutConsent(ctx, consent))

	// Before expiry everything is there.
	_, err = s.GetClient(ctx, shortClient.ID)
	require.NoError(t, err)
	_, err = s.GetAuthRequest(ctx, req.ID)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{shortJTI, longJTI}, feedJTIs(t, s, 0))

	time.Sleep(time.Until(soon.Add(waitPast - shortTTL)))

	_, err = s.GetClient(ctx, shortClient.ID)
	assert.ErrorIs(t, err, store.ErrNotFound, "client")
	list, err := s.ListClients(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1, "expired clients are not listed")
	assert.Equal(t, longClient.ID, list[0].ID)
	_, err = s.GetAuthRequest(ctx, req.ID)
	assert.ErrorIs(t, err, store.ErrNotFound, "auth request")
	_, err = s.RedeemCode(ctx, code.Hash)
	assert.ErrorIs(t, err, store.ErrNotFound, "code")
	_, err = s.RedeemCode(ctx, usedCode.Hash)
	assert.ErrorIs(t, err, store.ErrNotFound, "used code")
	_, err = s.GetRefresh(ctx, refresh.Hash)
	assert.ErrorIs(t, err, store.ErrNotFound, "refresh")
	_, err = s.RotateRefresh(ctx, refresh.Hash, newRefresh(fam, longClient.ID, alice), store.Sealed{})
	assert.ErrorIs(t, err, store.ErrNotFound, "rotate expired refresh")
	_, err = storedAccess(t, s, access.JTI)
	assert.ErrorIs(t, err, store.ErrNotFound, "access")
	_, err = s.GetConsent(ctx, consent.UserID, consent.ClientID)
	assert.ErrorIs(t, err, store.ErrNotFound, "consent")
	revoked, err := s.IsRevoked(ctx, shortJTI)
	require.NoError(t, err)
	assert.False(t, revoked, "an expired feed entry is gone")
	entries, cursor, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	require.Len(t, entries, 1, "expired feed entries are left out")
	assert.Equal(t, longJTI, entries[0].JTI)
	assert.GreaterOrEqual(t, cursor, cursorBefore, "the cursor never goes back")

	// An expired id is free again.
	shortClient.ExpiresAt = time.Time{}
	require.NoError(t, s.CreateClient(ctx, shortClient))

	n, err := s.PurgeExpired(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, 0)
	// Purging keeps what is alive.
	list, err = s.ListClients(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 2)
	assert.ElementsMatch(t, []string{longJTI}, feedJTIs(t, s, 0))
	n, err = s.PurgeExpired(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "a second purge finds nothing")
}

func testClosed(t *testing.T, s store.Store) {
	ctx := context.Background()
	require.NoError(t, s.CreateClient(ctx, newClient()))
	require.NoError(t, s.Close())
	_, err := s.GetClient(ctx, "x")
	assert.ErrorIs(t, err, store.ErrUnavailable)
	assert.ErrorIs(t, s.CreateClient(ctx, newClient()), store.ErrUnavailable)
	assert.ErrorIs(t, s.Ping(ctx), store.ErrUnavailable)
	assert.NoError(t, s.Close(), "closing twice is harmless")
}

func isErr(err, target error) bool { return errors.Is(err, target) }

// Short-lived records must come with an expiry; without one the backend could keep them (and a used code's mark)
// for ever or for no time at all.
func testNoExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	code := newCode(id())
	code.ExpiresAt = time.Time{}
	assert.ErrorIs(t, s.CreateCode(ctx, code), store.ErrNoExpiry)
	_, err := s.RedeemCode(ctx, code.Hash)
	assert.ErrorIs(t, err, store.ErrNotFound, "nothing was stored")
	r := newRefresh(id(), id(), alice)
	r.ExpiresAt = time.Time{}
	assert.ErrorIs(t, s.CreateRefresh(ctx, r), store.ErrNoExpiry)
	live := newRefresh(id(), id(), alice)
	require.NoError(t, s.CreateRefresh(ctx, live))
	next := newRefresh(live.FamilyID, live.ClientID, alice)
	next.ExpiresAt = time.Time{}
	_, err = s.RotateRefresh(ctx, live.Hash, next, store.Sealed{})
	assert.ErrorIs(t, err, store.ErrNoExpiry)
	_, err = s.GetRefresh(ctx, live.Hash)
	assert.NoError(t, err, "a refused rotation leaves the token usable")
	a := newAccess(id(), id(), alice.ID)
	a.ExpiresAt = time.Time{}
	assert.ErrorIs(t, s.RecordAccess(ctx, a), store.ErrNoExpiry)
	assert.ErrorIs(t, s.PutAuthRequest(ctx, &store.AuthRequest{ID: id()}), store.ErrNoExpiry)
}
