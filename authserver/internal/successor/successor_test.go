package successor

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

func TestSealOpen(t *testing.T) {
	const r1 = "the-old-refresh-token-value-0123456789abcdef"
	h1 := store.HashSecret(r1)
	want := Response{RefreshToken: "r2-value", AccessToken: "eyJ.access.token", Scope: "mcp",
		AccessExpiresAt: time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC)}
	sealed, err := Seal(r1, h1, want)
	require.NoError(t, err)
	assert.False(t, bytes.Contains(sealed, []byte("r2-value")), "the successor is not stored in clear")
	assert.False(t, bytes.Contains(sealed, []byte("eyJ.access.token")))

	got, err := Open(r1, h1, sealed)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	// Only the old token opens it: not its hash (which the store holds), not another token.
	_, err = Open(h1, h1, sealed)
	assert.ErrorIs(t, err, ErrOpen)
	_, err = Open("another-token", h1, sealed)
	assert.ErrorIs(t, err, ErrOpen)
	// Bound to the old token's record: the same ciphertext under another hash does not open.
	_, err = Open(r1, store.HashSecret("other"), sealed)
	assert.ErrorIs(t, err, ErrOpen)
	// Damaged or truncated data does not open.
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	_, err = Open(r1, h1, bad)
	assert.ErrorIs(t, err, ErrOpen)
	_, err = Open(r1, h1, sealed[:5])
	assert.ErrorIs(t, err, ErrOpen)
}
