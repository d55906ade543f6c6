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

func set(t *testing.T, keys ...map[string]any) []byte {
	if keys == nil {
		keys = []map[string]any{}
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
	rsaJWK := jwk.Key{ID: "r1", Alg: "RS256", Public: &rsaKey.PublicKey}.JSON()
	ecJWK := jwk.Key{ID: "e1", Public: &ecKey.PublicKey}.JSON()

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
	enc := jwk.Key{ID: "enc", Public: &rsaKey.PublicKey}.JSON()
	enc["use"] = "enc"
	okp := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
	other := jwk.Key{ID: "p384", Public: &p384.PublicKey}.JSON()
	other["kty"], other["crv"] = "EC", "P-384"
	hs := map[string]any{"kty": "RSA", "alg": "HS256", "n": rsaJWK["n"], "e": rsaJWK["e"]}
	keys, err = jwk.ParseSet(set(t, enc, okp, other, hs, ecJWK))
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.Equal(t, "e1", keys[0].ID)

	offCurve := jwk.Key{Public: &ecKey.PublicKey}.JSON()
	offCurve["y"] = offCurve["x"]
	for name, c := range map[string]struct {
		set  []byte
		want string
	}{
		"not JSON":          {[]byte("{"), "not a JSON Web Key Set"},
		"no keys member":    {[]byte(`{"kid":"x"}`), `no "keys"`},
		"empty":             {set(t), "no signing key"},
		"only unusable":     {set(t, enc, okp), "no signing key"},
		"weak RSA":          {set(t, jwk.Key{Public: &weak.PublicKey}.JSON()), "1024 bits"},
		"private RSA":       {set(t, withMember(rsaJWK, "d", "AQAB")), "private or symmetric"},
		"symmetric":         {set(t, map[string]any{"kty": "oct", "k": "c2VjcmV0"}), "private or symmetric"},
		"off the curve":     {set(t, offCurve), "not a point on P-256"},
		"short coordinate":  {set(t, withMember(ecJWK, "x", "AQAB")), "32 bytes"},
		"bad base64":        {set(t, withMember(rsaJWK, "n", "!!!")), "base64url"},
		"even exponent":     {set(t, withMember(rsaJWK, "e", "Ag")), "exponent"},
		"alg of other type": {set(t, withMember(ecJWK, "alg", "RS256")), "does not fit"},
		"too many":          {set(t, repeat(ecJWK, jwk.MaxKeys+1)...), "at most"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := jwk.ParseSet(c.set)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func withMember(k map[string]any, name, v string) map[string]any {
	out := map[string]any{}
	for a, b := range k {
		out[a] = b
	}
	out[name] = v
	return out
}

func repeat(k map[string]any, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = k
	}
	return out
}
