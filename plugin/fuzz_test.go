package plugin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// fuzzKey is fixed so that seeds signed with it stay valid across runs (a fuzz corpus must be reproducible).
func fuzzKey() *ecdsa.PrivateKey {
	d, _ := hex.DecodeString("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		panic(err)
	}
	return k
}

// fuzzMiddleware is a compiled middleware with its key set installed directly: no network, no background loops.
func fuzzMiddleware(t testing.TB, rsaPub *rsa.PublicKey) *Middleware {
	c := CreateConfig()
	c.Issuer, c.Resource, c.RevocationFeedURL = "https://auth.example.com", "https://mcp.example.com/mcp", feedOff
	s, err := parseConfig(c)
	require.NoError(t, err)
	k := fuzzKey()
	keys := map[string]*verifyKey{"k1": {kid: "k1", alg: "ES256", crv: "P-256", size: 32, ec: &k.PublicKey}}
	if rsaPub != nil {
		keys["r1"] = &verifyKey{kid: "r1", rsa: rsaPub}
	}
	st := &issuerState{issuer: s.issuer, feedConf: feedOff, keys: keys, revoked: map[string]int64{"revoked-jti": 0},
		caches: map[string]*tokenCache{}, lastFetch: time.Now(), jwksMinRefresh: time.Hour}
	m := &Middleware{s: s, st: st, cache: newTokenCache(time.Now().Unix())}
	require.NoError(t, m.prepare())
	return m
}

func fuzzSeeds(t testing.TB) []string {
	k := fuzzKey()
	now := time.Now().Unix()
	claims := jwt.MapClaims{"iss": "https://auth.example.com", "sub": "1", "aud": "https://mcp.example.com/mcp",
		"client_id": "c", "scope": "mcp", "iat": now, "nbf": now, "exp": now + 86400*365*50, "jti": "jti-0123456789abcdefghij",
		"username": "u", "email": "u@example.com"}
	sign := func(c jwt.MapClaims, hdr map[string]interface{}) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tok.Header["typ"], tok.Header["kid"] = "at+jwt", "k1"
		for k, v := range hdr {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(k)
		require.NoError(t, err)
		return s
	}
	good := sign(claims, nil)
	arrayAud := jwt.MapClaims{}
	for k, v := range claims {
		arrayAud[k] = v
	}
	arrayAud["aud"] = []string{"x", "https://mcp.example.com/mcp"}
	revoked := jwt.MapClaims{}
	for k, v := range claims {
		revoked[k] = v
	}
	revoked["jti"] = "revoked-jti"
	e := base64.RawURLEncoding.EncodeToString
	body, _ := json.Marshal(claims)
	return []string{
		good,
		sign(arrayAud, nil),
		sign(revoked, nil),
		sign(claims, map[string]interface{}{"crit": []string{"b64"}}),
		e([]byte(`{"alg":"none","typ":"at+jwt","kid":"k1"}`)) + "." + e(body) + ".",
		e([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"k1"}`)) + "." + e(body) + "." + e(make([]byte, 256)),
		e([]byte(`{"alg":"ES256","typ":"at+jwt","kid":"r1"}`)) + "." + e(body) + "." + e(make([]byte, 64)),
		strings.Replace(good, ".", "=.", 1),
		good + ".x.y",
		"",
		"..",
		"e30.e30.e30",
	}
}

// FuzzParseToken feeds arbitrary strings through the whole token check (parse, key choice, signature, claims).
// It must never panic, and whatever it accepts must satisfy the route's rules. CI runs the seeds; explore with
// go test -run XXX -fuzz FuzzParseToken ./plugin
func FuzzParseToken(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	m := fuzzMiddleware(f, &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537})
	f.Fuzz(func(t *testing.T, tok string) {
		now := time.Now()
		e, err := verify(m, tok, now)
		if err != nil {
			if len(err.Error()) > 300 || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error description unfit for a header: %q", err)
			}
			return
		}
		pt, perr := parseToken(tok, m.s.maxTokenBytes, m.s.algorithms)
		require.NoError(t, perr, "accepted but does not parse")
		c := pt.claims
		require.Equal(t, m.s.issuer, c.Iss)
		require.True(t, audienceHas(c.Aud, m.s.resource))
		require.Greater(t, c.Exp+m.s.skew.Seconds(), float64(now.Unix())-1)
		require.NotEqual(t, "revoked-jti", c.Jti)
		require.Equal(t, "ES256", pt.alg, "only the EC key can produce a valid signature here")
		require.False(t, e.denied && len(e.ops) > 0)
	})
}

func TestFuzzSeedsBehave(t *testing.T) {
	m := fuzzMiddleware(t, nil)
	seeds := fuzzSeeds(t)
	_, err := verify(m, seeds[0], time.Now())
	require.NoError(t, err, "the first seed is a valid token")
	_, err = verify(m, seeds[1], time.Now())
	require.NoError(t, err, "an array audience naming the resource is valid")
	for i, s := range seeds[2:] {
		_, err := verify(m, s, time.Now())
		require.Error(t, err, "seed %d must be refused", i+2)
	}
}
