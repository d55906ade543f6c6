package keys_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
)

func TestKeysPersistAndRotate(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open("", nil)
	require.NoError(t, err)
	defer st.Close()

	first := &keys.Manager{Store: st, MaxTokenLifetime: time.Hour}
	require.NoError(t, first.Ensure(ctx))
	kid1, _, err := first.Signer(ctx)
	require.NoError(t, err)

	// A second instance on the same store (a restart, or another node) signs with the same key.
	second := &keys.Manager{Store: st, MaxTokenLifetime: time.Hour}
	require.NoError(t, second.Ensure(ctx))
	kid, _, err := second.Signer(ctx)
	require.NoError(t, err)
	assert.Equal(t, kid1, kid)

	// Rotation publishes the new key at once but signs with it only after the delay.
	kid2, err := first.Rotate(ctx, time.Hour)
	require.NoError(t, err)
	set, err := first.JWKS(ctx)
	require.NoError(t, err)
	require.Len(t, set, 2)
	assert.ElementsMatch(t, []string{kid1, kid2}, []string{set[0].Kid, set[1].Kid})
	for _, k := range set {
		assert.Equal(t, "ES256", k.Alg)
		assert.Equal(t, "sig", k.Use)
		assert.Len(t, k.X, 43)
	}
	kid, _, err = first.Signer(ctx)
	require.NoError(t, err)
	assert.Equal(t, kid1, kid, "the new key does not sign before its activation")

	// With no delay the new key signs at once; the old one stays published for its tokens' lifetime.
	kid3, err := first.Rotate(ctx, 0)
	require.NoError(t, err)
	kid, _, err = first.Signer(ctx)
	require.NoError(t, err)
	assert.Equal(t, kid3, kid)
	_, err = first.PublicKey(ctx, kid1)
	assert.NoError(t, err, "a retiring key still verifies the tokens it signed")
}

// A rotation made on one node reaches the others at their next refresh, and a retired key leaves the JWKS (and no
// longer verifies) once the last token it signed has expired.
func TestRotationReachesOtherNodesAndRetiredKeysLeave(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open("", nil)
	require.NoError(t, err)
	defer st.Close()
	const lifetime = 200 * time.Millisecond
	node1 := &keys.Manager{Store: st, MaxTokenLifetime: lifetime, Refresh: 20 * time.Millisecond}
	require.NoError(t, node1.Ensure(ctx))
	node2 := &keys.Manager{Store: st, MaxTokenLifetime: lifetime, Refresh: 20 * time.Millisecond}
	require.NoError(t, node2.Ensure(ctx))
	old, _, err := node2.Signer(ctx)
	require.NoError(t, err)

	fresh, err := node1.Rotate(ctx, 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		kid, _, err := node2.Signer(ctx)
		return err == nil && kid == fresh
	}, 2*time.Second, 10*time.Millisecond, "the other node signs with the new key after its refresh")

	kids := func(m *keys.Manager) []string {
		set, err := m.JWKS(ctx)
		require.NoError(t, err)
		var out []string
		for _, k := range set {
			out = append(out, k.Kid)
		}
		return out
	}
	assert.ElementsMatch(t, []string{old, fresh}, kids(node2), "the old key stays published while its tokens live")
	require.Eventually(t, func() bool { return len(kids(node2)) == 1 }, 2*time.Second, 20*time.Millisecond)
	assert.Equal(t, []string{fresh}, kids(node2), "the retired key left the JWKS")
	assert.Equal(t, []string{fresh}, kids(node1))
	_, err = node1.PublicKey(ctx, old)
	assert.Error(t, err, "a retired key no longer verifies")
}

// The JWKS endpoint publishes each key with these members, in this order: the plugin and every client read them.
func TestJWKSMembers(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open("", nil)
	require.NoError(t, err)
	defer st.Close()
	m := &keys.Manager{Store: st, MaxTokenLifetime: time.Hour}
	require.NoError(t, m.Ensure(ctx))
	kid, _, err := m.Signer(ctx)
	require.NoError(t, err)
	pub, err := m.PublicKey(ctx, kid)
	require.NoError(t, err)
	point, err := pub.Bytes()
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString

	set, err := m.JWKS(ctx)
	require.NoError(t, err)
	got, err := json.Marshal(set)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf(`[{"kty":"EC","crv":"P-256","x":"%s","y":"%s","kid":"%s","alg":"ES256","use":"sig"}]`,
		b64(point[1:33]), b64(point[33:]), kid), string(got))
}
