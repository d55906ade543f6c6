package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// populated is a store filled with one of every kind of record, and what to check after a restore.
type populated struct {
	client, public  *store.Client
	req             *store.AuthRequest
	fresh, used     *store.AuthCode
	r1, r2          *store.RefreshToken
	access          *store.AccessToken
	revokedFam, jti string
	revokedAccess   *store.AccessToken
	consent         *store.Consent
	device          *store.DeviceGrant
	keys            []store.SigningKey
	feed            []store.Revocation
	cursor          int64
}

func populate(t *testing.T, s store.Store) *populated {
	t.Helper()
	ctx := context.Background()
	p := &populated{client: newClient(), public: newClient()}
	p.public.SecretHash, p.public.TokenEndpointAuth, p.public.ExpiresAt = "", "none", time.Time{}
	require.NoError(t, s.CreateClient(ctx, p.client))
	require.NoError(t, s.CreateClient(ctx, p.public))
	u := alice
	p.req = &store.AuthRequest{ID: id(), ClientID: p.client.ID, RedirectURI: "http://127.0.0.1/callback", State: "s",
		CodeChallenge: "c", Scope: "mcp", Resource: "http://localhost:8080/everything/mcp", User: &u, CSRFToken: id(),
		CreatedAt: now(), ExpiresAt: now().Add(10 * time.Minute)}
	require.NoError(t, s.PutAuthRequest(ctx, p.req))
	p.fresh, p.used = newCode(p.client.ID), newCode(p.client.ID)
	require.NoError(t, s.CreateCode(ctx, p.fresh))
	require.NoError(t, s.CreateCode(ctx, p.used))
	_, err := s.RedeemCode(ctx, p.used.Hash)
	require.NoError(t, err)
	p.r1, p.r2 = newRefresh(p.used.FamilyID, p.client.ID, alice), newRefresh(p.used.FamilyID, p.client.ID, alice)
	require.NoError(t, s.CreateRefresh(ctx, p.r1))
	_, err = s.RotateRefresh(ctx, p.r1.Hash, p.r2, store.Sealed{})
	require.NoError(t, err)
	p.access = newAccess(p.used.FamilyID, p.client.ID, alice.ID)
	require.NoError(t, s.RecordAccess(ctx, p.access))
	p.revokedFam, _, p.revokedAccess = grant(t, s, p.public.ID, bob)
	require.NoError(t, s.RevokeFamily(ctx, p.revokedFam))
	p.jti = id()
	require.NoError(t, s.RevokeAccess(ctx, p.jti, now().Add(time.Hour)))
	p.consent = &store.Consent{UserID: alice.ID, ClientID: p.client.ID, Scope: "mcp", GrantedAt: now(), ExpiresAt: now().Add(time.Hour)}
	require.NoError(t, s.PutConsent(ctx, p.consent))
	p.device = newDeviceGrant()
	p.device.ClientID = p.public.ID
	require.NoError(t, s.CreateDeviceGrant(ctx, p.device))
	require.NoError(t, s.DecideDeviceGrant(ctx, p.device.UserCode, true, alice, id()))
	_, err = s.PinLogin(ctx, "Alice", alice.ID)
	require.NoError(t, err)
	p.keys = []store.SigningKey{newKey("dumped-1"), newKey("dumped-2")}
	ok, err := s.CompareAndSetSigningKeys(ctx, nil, p.keys)
	require.NoError(t, err)
	require.True(t, ok)
	p.feed, p.cursor, err = revokedSince(ctx, s, 0)
	require.NoError(t, err)
	require.Len(t, p.feed, 2)
	return p
}

// check verifies that s holds what p put into its source store, with the feed numbered as in the source.
func (p *populated) check(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	got, err := s.GetClient(ctx, p.client.ID)
	require.NoError(t, err)
	sameJSON(t, p.client, got)
	got, err = s.GetClient(ctx, p.public.ID)
	require.NoError(t, err)
	sameJSON(t, p.public, got)
	list, err := s.ListClients(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 2, "restored clients are listed")
	req, err := s.GetAuthRequest(ctx, p.req.ID)
	require.NoError(t, err)
	sameJSON(t, p.req, req)
	c, err := s.RedeemCode(ctx, p.used.Hash)
	assert.ErrorIs(t, err, store.ErrReused, "a redeemed code stays redeemed")
	if assert.NotNil(t, c) {
		sameJSON(t, p.used, c)
	}
	c, err = s.RedeemCode(ctx, p.fresh.Hash)
	require.NoError(t, err)
	sameJSON(t, p.fresh, c)
	_, err = s.GetRefresh(ctx, p.r1.Hash)
	assert.ErrorIs(t, err, store.ErrReused)
	r, err := s.GetRefresh(ctx, p.r2.Hash)
	require.NoError(t, err)
	sameJSON(t, p.r2, r)
	a, err := storedAccess(t, s, p.access.JTI)
	require.NoError(t, err)
	sameJSON(t, p.access, a)
	for _, j := range []string{p.jti, p.revokedAccess.JTI} {
		revoked, err := s.IsRevoked(ctx, j)
		require.NoError(t, err)
		assert.True(t, revoked)
	}
	feed, cursor, err := revokedSince(ctx, s, 0)
	require.NoError(t, err)
	sameJSON(t, p.feed, feed, "a fresh store takes the dump's feed numbering")
	assert.Equal(t, p.cursor, cursor)
	cs, err := s.GetConsent(ctx, p.consent.UserID, p.consent.ClientID)
	require.NoError(t, err)
	sameJSON(t, p.consent, cs)
	keys, err := s.SigningKeys(ctx)
	require.NoError(t, err)
	sameJSON(t, p.keys, keys)
	pending, err := s.PendingCount(ctx, p.client.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, pending, "restored requests in flight count against their client")
	pending, err = s.PendingCount(ctx, p.public.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, pending, "restored device grants count against their client")
	// A device mid-login survives a restore: the user's approval is still collected by the device's next poll.
	g, err := s.GetDeviceGrant(ctx, p.device.UserCode)
	require.NoError(t, err, "device grants are in the dump")
	assert.Equal(t, store.DeviceApproved, g.Status)
	assert.Equal(t, alice, *g.User)
	pinned, err := s.PinLogin(ctx, "alice", "someone else")
	require.NoError(t, err)
	assert.Equal(t, alice.ID, pinned, "login pins are in the dump")

	// The revoked family is still marked: a token stored into it now is born revoked.
	late := newAccess(p.revokedFam, p.public.ID, bob.ID)
	require.NoError(t, s.RecordAccess(ctx, late))
	revoked, err := s.IsRevoked(ctx, late.JTI)
	require.NoError(t, err)
	assert.True(t, revoked, "revoked-family mark restored")

	// Indexes work on restored data: revoking the client reaches the restored family.
	n, err := s.RevokeClient(ctx, p.client.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	_, err = s.GetRefresh(ctx, p.r2.Hash)
	assert.ErrorIs(t, err, store.ErrNotFound)
	revoked, err = s.IsRevoked(ctx, p.access.JTI)
	require.NoError(t, err)
	assert.True(t, revoked)
}

func backupOf(t *testing.T, s store.Store) store.Backup {
	t.Helper()
	b, ok := s.(store.Backup)
	require.True(t, ok, "%T does not implement store.Backup", s)
	return b
}

func dump(t *testing.T, s store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, backupOf(t, s).Dump(context.Background(), &buf))
	return buf.Bytes()
}

// storedAccess finds an access-token record in the store's dump (the store has no reader for one: the server only
// records them, for revocation): ErrNotFound when it is absent or past its expiry.
func storedAccess(t *testing.T, s store.Store, jti string) (*store.AccessToken, error) {
	t.Helper()
	var found *store.AccessToken
	err := store.ReadDump(bytes.NewReader(dump(t, s)), func(r store.DumpRecord) error {
		if r.Kind == store.DumpAccess && r.Access.JTI == jti && time.Now().Before(r.Access.ExpiresAt) {
			found = r.Access
		}
		return nil
	})
	require.NoError(t, err)
	if found == nil {
		return nil, store.ErrNotFound
	}
	return found, nil
}

// dumpLines returns a dump's record lines that must match between two dumps of the same state: not the header
// (it has the time) and not revoked-family marks (their expiry is approximate in Redis).
func dumpLines(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec store.DumpRecord
		require.NoError(t, json.Unmarshal([]byte(l), &rec), "line %d", i+1)
		if rec.Kind == store.DumpHeader || rec.Kind == store.DumpRevokedFam {
			continue
		}
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

func testDumpRestore(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	src := openClosed(t, open)
	p := populate(t, src)
	b := dump(t, src)

	first := strings.SplitN(string(b), "\n", 2)[0]
	var header store.DumpRecord
	require.NoError(t, json.Unmarshal([]byte(first), &header))
	assert.Equal(t, store.DumpHeader, header.Kind)
	assert.Equal(t, store.DumpFormat, header.Format)
	assert.Equal(t, store.DumpVersion, header.Version)

	dst := openClosed(t, open)
	require.NoError(t, backupOf(t, dst).Restore(ctx, bytes.NewReader(b)))
	assert.Equal(t, dumpLines(t, b), dumpLines(t, dump(t, dst)), "a restored store dumps the same records")
	p.check(t, dst)

	// Into a store with a feed and keys of its own: entries are numbered after its counter, keys are merged.
	busy := openClosed(t, open)
	own := id()
	require.NoError(t, busy.RevokeAccess(ctx, own, now().Add(time.Hour)))
	_, ownCursor, err := revokedSince(ctx, busy, 0)
	require.NoError(t, err)
	ownKey := newKey("own")
	ok, err := busy.CompareAndSetSigningKeys(ctx, nil, []store.SigningKey{ownKey})
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, backupOf(t, busy).Restore(ctx, bytes.NewReader(b)))
	newer, _, err := revokedSince(ctx, busy, ownCursor)
	require.NoError(t, err)
	var jtis []string
	for _, e := range newer {
		jtis = append(jtis, e.JTI)
	}
	assert.Equal(t, []string{p.feed[0].JTI, p.feed[1].JTI}, jtis, "restored entries come after the store's own, in order")
	keys, err := busy.SigningKeys(ctx)
	require.NoError(t, err)
	sameJSON(t, append(slices.Clone(p.keys), ownKey), keys)

	// Restoring twice changes nothing.
	before := dumpLines(t, dump(t, busy))
	require.NoError(t, backupOf(t, busy).Restore(ctx, bytes.NewReader(b)))
	assert.Equal(t, before, dumpLines(t, dump(t, busy)))

	// Bad input is refused with a message naming the problem, and changes nothing.
	empty := openClosed(t, open)
	for name, tc := range map[string]struct{ in, want string }{
		"no header":      {`{"kind":"client","client":{"client_id":"x"}}` + "\n", "header"},
		"newer version":  {`{"kind":"header","format":"mcp-oauth-gateway-store","version":99}` + "\n", "version 99"},
		"unknown kind":   {string(b[:len(first)+1]) + `{"kind":"client","client":{"client_id":"ok","issued_at":"2026-01-01T00:00:00Z"}}` + "\n" + `{"kind":"gremlin"}` + "\n", "line 3"},
		"not json":       {string(b[:len(first)+1]) + "{oops\n", "line 2"},
		"empty":          {"", "header"},
		"missing record": {string(b[:len(first)+1]) + `{"kind":"refresh"}` + "\n", "without its payload"},
	} {
		err := backupOf(t, empty).Restore(ctx, strings.NewReader(tc.in))
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
	_, err = empty.GetClient(ctx, "ok")
	assert.ErrorIs(t, err, store.ErrNotFound, "a refused dump restores nothing")
}

// RunCrossRestore dumps a populated store of one backend, restores it into the other, dumps that and restores it
// into a fresh store of the first: the state must survive both trips.
func RunCrossRestore(t *testing.T, openA, openB func(t *testing.T) store.Store) {
	ctx := context.Background()
	a := openClosed(t, openA)
	p := populate(t, a)
	dumpA := dump(t, a)

	b := openClosed(t, openB)
	require.NoError(t, backupOf(t, b).Restore(ctx, bytes.NewReader(dumpA)))
	dumpB := dump(t, b)
	assert.Equal(t, dumpLines(t, dumpA), dumpLines(t, dumpB), "A -> B keeps every record")

	a2 := openClosed(t, openA)
	require.NoError(t, backupOf(t, a2).Restore(ctx, bytes.NewReader(dumpB)))
	assert.Equal(t, dumpLines(t, dumpA), dumpLines(t, dump(t, a2)), "A -> B -> A keeps every record")
	p.check(t, b)
	p.check(t, a2)
}
