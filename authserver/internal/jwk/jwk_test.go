package jwk_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
)

func set(t *testing.T, keys ...jwk.Object) []byte {
	if keys == nil {
		keys = []jwk.Object{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	require.NoError(t, err)
	return b
}

func TestParseSet(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsaJWK := encode(t, jwk.Key{ID: "r1", Alg: "RS256", Public: &rsaKey.PublicKey})
	ecJWK := encode(t, jwk.Key{ID: "e1", Public: &ecKey.PublicKey})

	keys, err := jwk.ParseSet(set(t, rsaJWK, ecJWK))
	require.NoError(t, err)
	require.Len(t, keys, 2)
	assert.Equal(t, "r1", keys[0].ID)
	assert.True(t, rsaKey.PublicKey.Equal(keys[0].Public), "the RSA key round-trips")
	assert.True(t, ecKey.PublicKey.Equal(keys[1].Public), "the EC key round-trips")
	assert.True(t, keys[0].Fits("RS256"))
	assert.False(t, keys[0].Fits("PS256"), "a key that names its alg fits that alg only")
	assert.True(t, keys[1].Fits("ES256"))
	assert.False(t, keys[1].Fits("RS256"))

	// Keys that are not for signatures, or of types the server does not use, are skipped beside a good one.
	enc := encode(t, jwk.Key{ID: "enc", Public: &rsaKey.PublicKey})
	enc.Use = "enc"
	okp := jwk.Object{Kty: "OKP", Crv: "Ed25519", X: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
	_, err = jwk.Key{ID: "p384", Public: &p384.PublicKey}.Encode()
	require.ErrorContains(t, err, "only P-256", "the server writes no key of a curve it does not use")
	other := jwk.Object{Kty: "EC", Crv: "P-384", Kid: "p384"}
	hs := jwk.Object{Kty: "RSA", Alg: "HS256", N: rsaJWK.N, E: rsaJWK.E}
	keys, err = jwk.ParseSet(set(t, enc, okp, other, hs, ecJWK))
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.Equal(t, "e1", keys[0].ID)

	offCurve := encode(t, jwk.Key{Public: &ecKey.PublicKey})
	offCurve.Y = offCurve.X
	for name, c := range map[string]struct {
		set  []byte
		want string
	}{
		"not JSON":          {[]byte("{"), "not a JSON Web Key Set"},
		"no keys member":    {[]byte(`{"kid":"x"}`), `no "keys"`},
		"empty":             {set(t), "no signing key"},
		"only unusable":     {set(t, enc, okp), "no signing key"},
		"weak RSA":          {set(t, encode(t, jwk.Key{Public: &weak.PublicKey})), "1024 bits"},
		"private RSA":       {set(t, with(rsaJWK, func(o *jwk.Object) { o.D = "AQAB" })), "private or symmetric"},
		"symmetric":         {set(t, jwk.Object{Kty: "oct", K: "c2VjcmV0"}), "private or symmetric"},
		"off the curve":     {set(t, offCurve), "not a point on P-256"},
		"short coordinate":  {set(t, with(ecJWK, func(o *jwk.Object) { o.X = "AQAB" })), "32 bytes"},
		"bad base64":        {set(t, with(rsaJWK, func(o *jwk.Object) { o.N = "!!!" })), "base64url"},
		"even exponent":     {set(t, with(rsaJWK, func(o *jwk.Object) { o.E = "Ag" })), "exponent"},
		"alg of other type": {set(t, with(ecJWK, func(o *jwk.Object) { o.Alg = "RS256" })), "does not fit"},
		"too many":          {set(t, repeat(ecJWK, jwk.MaxKeys+1)...), "at most"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := jwk.ParseSet(c.set)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func encode(t *testing.T, k jwk.Key) jwk.Object {
	t.Helper()
	o, err := k.Encode()
	require.NoError(t, err)
	return o
}

// with is a copy of o changed by change.
func with(o jwk.Object, change func(*jwk.Object)) jwk.Object {
	change(&o)
	return o
}

func repeat(k jwk.Object, n int) []jwk.Object {
	out := make([]jwk.Object, n)
	for i := range out {
		out[i] = k
	}
	return out
}
