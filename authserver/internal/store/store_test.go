package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

func TestHashSecret(t *testing.T) {
	h := store.HashSecret("abc")
	assert.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h)
	assert.NotEqual(t, h, store.HashSecret("abd"))
}

func TestSameSigningKeys(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k := store.SigningKey{KID: "a", Alg: "ES256", PrivatePEM: "x", PublishedAt: at, ActiveAt: at}
	assert.True(t, store.SameSigningKeys(nil, []store.SigningKey{}))
	assert.True(t, store.SameSigningKeys([]store.SigningKey{k}, []store.SigningKey{k}))
	inOtherZone := k
	inOtherZone.ActiveAt = at.In(time.FixedZone("x", 3600))
	assert.True(t, store.SameSigningKeys([]store.SigningKey{k}, []store.SigningKey{inOtherZone}), "times compare as instants")
	retired := k
	retired.RetireAt = at
	assert.False(t, store.SameSigningKeys([]store.SigningKey{k}, []store.SigningKey{retired}))
	other := k
	other.KID = "b"
	assert.False(t, store.SameSigningKeys([]store.SigningKey{k}, []store.SigningKey{other}))
	assert.False(t, store.SameSigningKeys([]store.SigningKey{k, other}, []store.SigningKey{other, k}), "order matters")
	assert.False(t, store.SameSigningKeys(nil, []store.SigningKey{k}))
}

func TestMergeSigningKeys(t *testing.T) {
	a, b, c := store.SigningKey{KID: "a"}, store.SigningKey{KID: "b"}, store.SigningKey{KID: "c"}
	got := store.MergeSigningKeys([]store.SigningKey{a, b}, []store.SigningKey{c, b})
	require.Len(t, got, 3)
	assert.Equal(t, []string{"a", "b", "c"}, []string{got[0].KID, got[1].KID, got[2].KID})
}

func TestDumpRoundTrip(t *testing.T) {
	var buf strings.Builder
	w, err := store.NewDumpWriter(&buf)
	require.NoError(t, err)
	require.NoError(t, w.Write(store.DumpRecord{Kind: store.DumpClient, Client: &store.Client{ID: "c1"}}))
	require.NoError(t, w.Write(store.DumpRecord{Kind: store.DumpFeedSeq, Seq: 7}))
	require.NoError(t, w.Close())
	assert.Equal(t, 3, strings.Count(buf.String(), "\n"), "header plus one line per record")

	var got []store.DumpRecord
	require.NoError(t, store.ReadDump(strings.NewReader(buf.String()), func(r store.DumpRecord) error {
		got = append(got, r)
		return nil
	}))
	require.Len(t, got, 2)
	assert.Equal(t, "c1", got[0].Client.ID)
	assert.Equal(t, int64(7), got[1].Seq)

	// Blank lines are tolerated; a last line without newline is read.
	in := strings.Split(buf.String(), "\n")
	require.NoError(t, store.ReadDump(strings.NewReader(in[0]+"\n\n"+in[1]), func(store.DumpRecord) error { return nil }))
}

func TestCheckDumpRecord(t *testing.T) {
	assert.NoError(t, store.CheckDumpRecord(store.DumpRecord{Kind: store.DumpConsent, Consent: &store.Consent{}}))
	assert.ErrorIs(t, store.CheckDumpRecord(store.DumpRecord{Kind: store.DumpConsent}), store.ErrBadDumpRecord)
	assert.ErrorIs(t, store.CheckDumpRecord(store.DumpRecord{Kind: "nope"}), store.ErrBadDumpRecord)
	assert.ErrorIs(t, store.CheckDumpRecord(store.DumpRecord{Kind: store.DumpRevokedFam}), store.ErrBadDumpRecord)
}
