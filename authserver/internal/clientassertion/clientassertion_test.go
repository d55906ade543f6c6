package clientassertion_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientassertion"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
)

const (
	client   = "https://chatgpt.example.com/oauth/abc/client.json"
	issuer   = "https://auth.example.com"
	tokenURL = issuer + "/token"
)

type signer struct {
	kid string
	alg jwt.SigningMethod
	key crypto.Signer
}

func (s signer) public() jwk.Key { return jwk.Key{ID: s.kid, Public: s.key.Public()} }

// sign makes an assertion with the usual claims, changed by edit.
func (s signer) sign(t testing.TB, edit func(jwt.MapClaims, map[string]any)) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{"iss": client, "sub": client, "aud": tokenURL, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		"jti": rand.Text()}
	tok := jwt.NewWithClaims(s.alg, claims)
	if s.kid != "" {
		tok.Header["kid"] = s.kid
	}
	if edit != nil {
		edit(claims, tok.Header)
	}
	out, err := tok.SignedString(s.key)
	require.NoError(t, err)
	return out
}

func newRSA(t testing.TB, kid string, alg jwt.SigningMethod) signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return signer{kid, alg, k}
}

func newEC(t testing.TB, kid string) signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return signer{kid, jwt.SigningMethodES256, k}
}

func fixed(keys ...jwk.Key) clientassertion.Keys {
	return func(context.Context, bool) ([]jwk.Key, error) { return keys, nil }
}

func newVerifier(t *testing.T) *clientassertion.Verifier {
	st, err := embedded.Open("", slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return &clientassertion.Verifier{JTIs: st}
}

func req(keys clientassertion.Keys, assertion string) clientassertion.Request {
	return clientassertion.Request{ClientID: client, Keys: keys, Audiences: []string{issuer, tokenURL}, Assertion: assertion}
}

func TestVerifyAccepts(t *testing.T) {
	v := newVerifier(t)
	ctx := context.Background()
	rs, ps, es := newRSA(t, "rs", jwt.SigningMethodRS256), newRSA(t, "ps", jwt.SigningMethodPS256), newEC(t, "")
	keys := fixed(rs.public(), ps.public(), es.public())
	require.NoError(t, v.Verify(ctx, req(keys, rs.sign(t, nil))), "RS256 with kid")
	require.NoError(t, v.Verify(ctx, req(keys, ps.sign(t, nil))), "PS256")
	require.NoError(t, v.Verify(ctx, req(keys, es.sign(t, nil))), "ES256 without kid: every EC key is tried")
	require.NoError(t, v.Verify(ctx, req(keys, rs.sign(t, func(c jwt.MapClaims, _ map[string]any) { c["aud"] = issuer }))),
		"aud = the issuer")
	r := req(keys, rs.sign(t, nil))
	r.Alg = "RS256"
	require.NoError(t, v.Verify(ctx, r), "the declared algorithm")
}

// draft-ietf-oauth-rfc7523bis: aud is one string naming this server, never a list, even a list that names it (a
// client that signs for several servers at once hands each of them an assertion the others accept: audience
// injection). It is checked before any key is fetched.
func TestVerifyRefusesAudienceLists(t *testing.T) {
	v := newVerifier(t)
	rs := newRSA(t, "rs", jwt.SigningMethodRS256)
	fetched := 0
	keys := func(context.Context, bool) ([]jwk.Key, error) { fetched++; return []jwk.Key{rs.public()}, nil }
	for name, aud := range map[string]any{
		"another server first": []string{"https://evil.example", issuer},
		"the issuer alone":     []string{issuer},
		"the token endpoint":   []string{tokenURL},
		"another server":       "https://evil.example",
		"an endpoint":          issuer + "/introspect",
	} {
		err := v.Verify(context.Background(), req(keys, rs.sign(t, func(c jwt.MapClaims, _ map[string]any) { c["aud"] = aud })))
		var ae *clientassertion.Error
		require.ErrorAs(t, err, &ae, name)
		assert.Contains(t, err.Error(), "aud must be", name)
		if _, list := aud.([]string); list {
			assert.Contains(t, err.Error(), "not a list", name)
		}
	}
	assert.Zero(t, fetched, "refused before any key was fetched")
}

func TestVerifyRefuses(t *testing.T) {
	v := newVerifier(t)
	ctx := context.Background()
	rs, es := newRSA(t, "rs", jwt.SigningMethodRS256), newEC(t, "ec")
	stranger := newRSA(t, "rs", jwt.SigningMethodRS256)
	keys := fixed(rs.public(), es.public())
	edit := func(f func(c jwt.MapClaims, h map[string]any)) string { return rs.sign(t, f) }

	// alg "none" and an HMAC keyed with the RSA public key (algorithm confusion), built by hand.
	pubDER, err := x509.MarshalPKIXPublicKey(rs.key.Public())
	require.NoError(t, err)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": client, "sub": client, "aud": tokenURL,
		"exp": time.Now().Add(time.Minute).Unix(), "jti": "hs"})
	hs.Header["kid"] = "rs"
	hmac, err := hs.SignedString(pubDER)
	require.NoError(t, err)
	b64 := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	none := b64(map[string]any{"alg": "none"}) + "." + b64(map[string]any{"iss": client, "sub": client, "aud": tokenURL,
		"exp": time.Now().Add(time.Minute).Unix(), "jti": "none"}) + "."

	for name, c := range map[string]struct {
		assertion, want string
		alg             string
	}{
		"alg none":           {assertion: none, want: "algorithm this server does not accept"},
		"HMAC confusion":     {assertion: hmac, want: "algorithm this server does not accept"},
		"not the declared":   {assertion: es.sign(t, nil), alg: "RS256", want: "algorithm this server does not accept"},
		"declared HS256":     {assertion: rs.sign(t, nil), alg: "HS256", want: "does not accept"},
		"another key":        {assertion: stranger.sign(t, nil), want: "signature does not verify"},
		"tampered":           {assertion: tamper(rs.sign(t, nil)), want: "signature does not verify"},
		"unknown kid":        {assertion: rs.sign(t, func(_ jwt.MapClaims, h map[string]any) { h["kid"] = "nope" }), want: `no RS256 key with kid "nope"`},
		"wrong aud":          {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { c["aud"] = "https://other.example/token" }), want: "aud must be this authorization server's issuer identifier, " + issuer},
		"no aud":             {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { delete(c, "aud") }), want: "aud is required"},
		"aud a number":       {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { c["aud"] = 7 }), want: "aud must be one string"},
		"iss not the client": {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { c["iss"] = "https://evil.example/c.json" }), want: "iss and sub"},
		"sub not the client": {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { c["sub"] = "someone" }), want: "iss and sub"},
		"expired":            {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), want: "expired"},
		"no exp":             {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { delete(c, "exp") }), want: "exp is required"},
		"exp too far":        {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { c["exp"] = time.Now().Add(time.Hour).Unix() }), want: "at most 10m0s"},
		"nbf ahead":          {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { c["nbf"] = time.Now().Add(5 * time.Minute).Unix() }), want: "not valid yet"},
		"iat ahead":          {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { c["iat"] = time.Now().Add(5 * time.Minute).Unix() }), want: "not valid yet"},
		"no jti":             {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { delete(c, "jti") }), want: "jti is required"},
		"long jti":           {assertion: edit(func(c jwt.MapClaims, _ map[string]any) { c["jti"] = strings.Repeat("j", 300) }), want: "jti is longer"},
		"crit header":        {assertion: edit(func(_ jwt.MapClaims, h map[string]any) { h["crit"] = []string{"exp"} }), want: "crit"},
		"garbage":            {assertion: "not.a.jwt", want: "not a well-formed JWT"},
		"huge":               {assertion: strings.Repeat("a", 17<<10), want: "longer than"},
	} {
		t.Run(name, func(t *testing.T) {
			r := req(keys, c.assertion)
			r.Alg = c.alg
			err := v.Verify(ctx, r)
			var ce *clientassertion.Error
			require.ErrorAs(t, err, &ce)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// An assertion is good once: its jti is remembered in the store, also across another verifier on the same store.
func TestReplayRefused(t *testing.T) {
	v := newVerifier(t)
	ctx := context.Background()
	rs := newRSA(t, "rs", jwt.SigningMethodRS256)
	a := rs.sign(t, nil)
	require.NoError(t, v.Verify(ctx, req(fixed(rs.public()), a)))
	err := v.Verify(ctx, req(fixed(rs.public()), a))
	assert.ErrorContains(t, err, "already used")
	other := &clientassertion.Verifier{JTIs: v.JTIs}
	assert.ErrorContains(t, other.Verify(ctx, req(fixed(rs.public()), a)), "already used")
	// The same jti from another client is another assertion.
	twin := rs.sign(t, func(c jwt.MapClaims, _ map[string]any) { c["jti"] = "shared" })
	require.NoError(t, v.Verify(ctx, req(fixed(rs.public()), twin)))
	otherClient := "https://other.example.com/client.json"
	mine := rs.sign(t, func(c jwt.MapClaims, _ map[string]any) {
		c["jti"], c["iss"], c["sub"] = "shared", otherClient, otherClient
	})
	r := req(fixed(rs.public()), mine)
	r.ClientID = otherClient
	require.NoError(t, v.Verify(ctx, r))
}

// A new kid makes the verifier ask for a fresh key set once (the client rotated its keys).
func TestKeyRotation(t *testing.T) {
	v := newVerifier(t)
	oldKey, newKey := newRSA(t, "2025", jwt.SigningMethodRS256), newRSA(t, "2026", jwt.SigningMethodRS256)
	var freshCalls int
	keys := func(_ context.Context, fresh bool) ([]jwk.Key, error) {
		if fresh {
			freshCalls++
			return []jwk.Key{oldKey.public(), newKey.public()}, nil
		}
		return []jwk.Key{oldKey.public()}, nil // the cached set
	}
	require.NoError(t, v.Verify(context.Background(), req(keys, oldKey.sign(t, nil))))
	assert.Zero(t, freshCalls)
	require.NoError(t, v.Verify(context.Background(), req(keys, newKey.sign(t, nil))))
	assert.Equal(t, 1, freshCalls)
}

// Failures that are not the client's (store down, keys unreachable for reasons of ours) are not an *Error.
func TestInfrastructureFailures(t *testing.T) {
	rs := newRSA(t, "rs", jwt.SigningMethodRS256)
	down := &clientassertion.Verifier{JTIs: failingJTIs{}}
	err := down.Verify(context.Background(), req(fixed(rs.public()), rs.sign(t, nil)))
	require.ErrorIs(t, err, store.ErrUnavailable)
	var ce *clientassertion.Error
	assert.False(t, errors.As(err, &ce))

	boom := errors.New("key source down")
	v := newVerifier(t)
	err = v.Verify(context.Background(), req(func(context.Context, bool) ([]jwk.Key, error) { return nil, boom }, rs.sign(t, nil)))
	assert.ErrorIs(t, err, boom)
}

func TestIssuer(t *testing.T) {
	rs := newRSA(t, "rs", jwt.SigningMethodRS256)
	iss, err := clientassertion.Issuer(rs.sign(t, nil))
	require.NoError(t, err)
	assert.Equal(t, client, iss)
	_, err = clientassertion.Issuer("garbage")
	assert.ErrorContains(t, err, "not a JWT")
	_, err = clientassertion.Issuer(rs.sign(t, func(c jwt.MapClaims, _ map[string]any) { delete(c, "iss") }))
	assert.ErrorContains(t, err, "iss is missing")
}

type failingJTIs struct{}

func (failingJTIs) UseJTI(context.Context, string, time.Time) error {
	return store.ErrUnavailable
}

func tamper(token string) string {
	parts := strings.Split(token, ".")
	var c map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(b, &c)
	c["jti"] = "tampered"
	b, _ = json.Marshal(c)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// BenchmarkVerify is the cost private_key_jwt adds to a token request (cached keys, in-memory jti store): parsing,
// one signature check, the claim checks and the jti write.
func BenchmarkVerify(b *testing.B) {
	for _, c := range []struct {
		name string
		new  func(t testing.TB) signer
	}{
		{"RS256", func(t testing.TB) signer { return newRSA(t, "rs", jwt.SigningMethodRS256) }},
		{"ES256", func(t testing.TB) signer { return newEC(t, "ec") }},
	} {
		b.Run(c.name, func(b *testing.B) {
			k := c.new(b)
			st, err := embedded.Open("", slog.New(slog.NewTextHandler(io.Discard, nil)))
			require.NoError(b, err)
			defer st.Close()
			v := &clientassertion.Verifier{JTIs: st}
			assertions := make([]string, b.N)
			for i := range assertions {
				assertions[i] = k.sign(b, nil)
			}
			b.ResetTimer()
			for i := range b.N {
				if err := v.Verify(context.Background(), req(fixed(k.public()), assertions[i])); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
