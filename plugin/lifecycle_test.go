package plugin

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eachMode runs a test against the compiled middleware and the one Yaegi interprets.
func eachMode(t *testing.T, test func(t *testing.T, f *fixture)) {
	t.Cleanup(stopAllIssuers)
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			test(t, newFixture(t, mode.build))
		})
	}
}

func status(h http.Handler, tok string) (int, string) {
	rec := do(h, http.MethodPost, mcpPath, bearer(tok))
	return rec.Code, rec.Header().Get("WWW-Authenticate")
}

func TestKeyRotation(t *testing.T) {
	eachMode(t, func(t *testing.T, f *fixture) {
		h, _ := f.handler(map[string]interface{}{"jwksMinRefreshInterval": "0s"})
		old := f.iss.sign("es", f.iss.claims(testResource))
		code, _ := status(h, old)
		require.Equal(t, 200, code)

		// A new key is published, then signs: its first token makes the middleware fetch the JWKS again.
		f.iss.addES256("es2")
		code, ch := status(h, f.iss.sign("es2", f.iss.claims(testResource)))
		require.Equal(t, 200, code, ch)

		// The old key is retired. The next fetch (here caused by an unknown kid) drops it, and with it the
		// cached tokens it signed.
		f.iss.removeKey("es")
		f.iss.addES256("es3")
		code, ch = status(h, f.iss.sign("es3", f.iss.claims(testResource)))
		require.Equal(t, 200, code, ch)
		code, ch = status(h, old)
		assert.Equal(t, 401, code)
		assert.Contains(t, ch, "kid 'es' is not in the issuer's key set")
	})
}

func TestUnknownKidFloodIsRateLimited(t *testing.T) {
	eachMode(t, func(t *testing.T, f *fixture) {
		h, _ := f.handler(map[string]interface{}{"jwksMinRefreshInterval": "1h"})
		before := atomic.LoadInt64(&f.iss.jwks)
		for i := 0; i < 50; i++ {
			tok := f.iss.sign("es", f.iss.claims(testResource), func(tk *jwt.Token) { tk.Header["kid"] = randomJTI() })
			code, _ := status(h, tok)
			require.Equal(t, 401, code)
		}
		assert.LessOrEqual(t, atomic.LoadInt64(&f.iss.jwks)-before, int64(1), "unknown kids must not hammer the JWKS endpoint")
	})
}

func TestRevocationFeed(t *testing.T) {
	eachMode(t, func(t *testing.T, f *fixture) {
		h, _ := f.handler(map[string]interface{}{"revocationPollInterval": "100ms"})
		c := f.iss.claims(testResource)
		tok := f.iss.sign("es", c)
		other := f.iss.sign("es", f.iss.claims(testResource))
		for i := 0; i < 2; i++ { // the second request is a cache hit
			code, _ := status(h, tok)
			require.Equal(t, 200, code)
		}
		f.iss.revoke(c["jti"].(string), c["exp"].(int64))
		// The spec allows 10 s; with a 100 ms poll it takes a fraction of that.
		require.Eventually(t, func() bool { code, _ := status(h, tok); return code == 401 }, 10*time.Second, 20*time.Millisecond)
		code, ch := status(h, tok)
		assert.Equal(t, 401, code)
		assert.Contains(t, ch, "revoked")
		code, _ = status(h, other)
		assert.Equal(t, 200, code, "other tokens stay valid")
	})
}

func TestRevocationFeedRestartsWhenCursorGoesBack(t *testing.T) {
	eachMode(t, func(t *testing.T, f *fixture) {
		for i := 0; i < 5; i++ {
			f.iss.revoke(randomJTI(), time.Now().Add(time.Hour).Unix())
		}
		h, _ := f.handler(map[string]interface{}{"revocationPollInterval": "100ms"})
		c := f.iss.claims(testResource)
		tok := f.iss.sign("es", c)
		code, _ := status(h, tok)
		require.Equal(t, 200, code)
		// The authorization server's store is replaced: its cursor starts again at 1, below the reader's 5.
		f.iss.mu.Lock()
		f.iss.seq, f.iss.feed = 1, []feedItem{{seq: 1, jti: c["jti"].(string), exp: c["exp"].(int64)}}
		f.iss.sinces = nil
		f.iss.mu.Unlock()
		require.Eventually(t, func() bool { code, _ := status(h, tok); return code == 401 }, 10*time.Second, 20*time.Millisecond)
		f.iss.mu.Lock()
		defer f.iss.mu.Unlock()
		assert.Contains(t, f.iss.sinces, int64(5), "polled from its own cursor")
		assert.Contains(t, f.iss.sinces, int64(0), "then started over")
	})
}

func TestUnavailableUntilKeysLoad(t *testing.T) {
	eachMode(t, func(t *testing.T, f *fixture) {
		atomic.StoreInt64(&f.iss.failJW, 1)
		h, err := f.build(t, f.config(nil), &backend{})
		require.NoError(t, err, "New must not wait for, or fail on, an unreachable key set")
		tok := f.iss.sign("es", f.iss.claims(testResource))
		rec := do(h, http.MethodPost, mcpPath, bearer(tok))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, "2", rec.Header().Get("Retry-After"))
		assert.Contains(t, rec.Body.String(), "temporarily_unavailable")
		code, _ := status(h, "")
		assert.Equal(t, 400, code, "an empty token is still judged without keys")
		rec = do(h, http.MethodPost, mcpPath, nil)
		assert.Equal(t, 401, rec.Code, "a request without a token is challenged without keys")

		atomic.StoreInt64(&f.iss.failJW, 0)
		require.Eventually(t, func() bool { code, _ := status(h, tok); return code == 200 }, 10*time.Second, 20*time.Millisecond)
	})
}

func TestReloadSharesKeysAndCache(t *testing.T) {
	eachMode(t, func(t *testing.T, f *fixture) {
		h1, _ := f.handler(nil)
		tok := f.iss.sign("es", f.iss.claims(testResource))
		code, _ := status(h1, tok)
		require.Equal(t, 200, code)
		fetches := atomic.LoadInt64(&f.iss.jwks)
		// A configuration reload builds every middleware again.
		for i := 0; i < 20; i++ {
			h, err := f.build(t, f.config(nil), &backend{})
			require.NoError(t, err)
			code, _ := status(h, tok) // no 503: the keys are already there
			require.Equal(t, 200, code)
		}
		assert.Equal(t, fetches, atomic.LoadInt64(&f.iss.jwks), "a reload must not fetch the JWKS again")
	})
}

func TestReloadReusesCachedVerdicts(t *testing.T) {
	t.Cleanup(stopAllIssuers)
	f := newFixture(t, buildCompiled)
	h1, _ := f.handler(nil)
	tok := f.iss.sign("es", f.iss.claims(testResource))
	code, _ := status(h1, tok)
	require.Equal(t, 200, code)
	h2, err := buildCompiled(t, f.config(nil), &backend{})
	require.NoError(t, err)
	m1, m2 := h1.(*Middleware), h2.(*Middleware)
	assert.Same(t, m1.cache, m2.cache)
	_, hit := m2.cache.hot.Load("Bearer " + tok)
	assert.True(t, hit, "the rebuilt middleware starts with a warm cache")

	// A different policy (another resource) gets its own cache.
	cfg := f.config(map[string]interface{}{"resource": "http://mcp.test/memory/mcp"})
	h3, err := buildCompiled(t, cfg, &backend{})
	require.NoError(t, err)
	assert.NotSame(t, m1.cache, h3.(*Middleware).cache)
}

func TestConfiguredEndpointsSkipDiscovery(t *testing.T) {
	eachMode(t, func(t *testing.T, f *fixture) {
		h, _ := f.handler(map[string]interface{}{"jwksUrl": f.iss.URL + "/.well-known/jwks.json", "revocationFeedUrl": "off"})
		code, _ := status(h, f.iss.sign("es", f.iss.claims(testResource)))
		assert.Equal(t, 200, code)
		assert.Zero(t, atomic.LoadInt64(&f.iss.meta), "no metadata fetch when both endpoints are configured")
		assert.Zero(t, atomic.LoadInt64(&f.iss.feeds), "no feed polling when it is off")
	})
}

func TestDiscoveryRefusesForeignIssuerMetadata(t *testing.T) {
	eachMode(t, func(t *testing.T, f *fixture) {
		// The metadata names the test server's URL; an issuer configured with a different spelling must not
		// adopt it (RFC 8414 §3.3), so keys never load.
		cfg := f.config(map[string]interface{}{"issuer": strings.Replace(f.iss.URL, "127.0.0.1", "localhost", 1)})
		h, err := f.build(t, cfg, &backend{})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return atomic.LoadInt64(&f.iss.meta) > 0 }, 10*time.Second, 10*time.Millisecond)
		code, _ := status(h, f.iss.sign("es", f.iss.claims(testResource)))
		assert.Equal(t, 503, code)
		assert.Zero(t, atomic.LoadInt64(&f.iss.jwks))
	})
}

func TestCacheExpiresWithTheToken(t *testing.T) {
	c := newTokenCache(100)
	c.setMax(3)
	c.put("a", &cacheEntry{deadline: 102}, 100)
	c.put("b", &cacheEntry{deadline: 105}, 100)
	c.put("d", &cacheEntry{deadline: 103, denied: true}, 100)
	_, ok := c.hot.Load("d")
	assert.False(t, ok, "403 verdicts stay off the hot map")
	c.sweep(102)
	_, ok = c.hot.Load("a")
	assert.False(t, ok, "expired at its deadline")
	_, ok = c.hot.Load("b")
	assert.True(t, ok)
	assert.NotNil(t, c.get("d", 102))
	// Full: the put makes room.
	c.put("e", &cacheEntry{deadline: 200}, 102)
	c.put("f", &cacheEntry{deadline: 200}, 102)
	c.mu.Lock()
	assert.LessOrEqual(t, len(c.all), 3)
	c.mu.Unlock()
	_, ok = c.hot.Load("f")
	assert.True(t, ok)
}

func TestConfigErrors(t *testing.T) {
	t.Cleanup(stopAllIssuers)
	cases := []struct {
		cfg  map[string]interface{}
		want string
	}{
		{map[string]interface{}{"resource": testResource}, "issuer is required"},
		{map[string]interface{}{"issuer": "https://auth.example.com/", "resource": testResource}, "must not end with /"},
		{map[string]interface{}{"issuer": "auth.example.com", "resource": testResource}, "must be an http or https URL"},
		{map[string]interface{}{"issuer": "https://auth.example.com"}, "resource is required"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": testResource + "#x"}, "fragment"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": testResource, "clockSkew": "soon"}, "clockSkew"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": testResource, "algorithms": "HS256"}, `"HS256" is not supported`},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": testResource, "headers": map[string]interface{}{"userId": "X User"}}, "not a valid header name"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": testResource, "scopes": `mcp "x"`}, "not a valid scope"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": testResource, "cacheSize": "many"}, "cannot parse 'CacheSize' as int"},
	}
	for _, mode := range modes {
		for _, c := range cases {
			_, err := mode.build(t, c.cfg, &backend{})
			require.Error(t, err, "%s: %v", mode.name, c.cfg)
			assert.Contains(t, err.Error(), c.want, mode.name)
		}
	}
}

// TestConfigDecoding feeds configurations the way Traefik's providers deliver them: docker labels give strings
// only (lists comma-separated), YAML gives typed values.
func TestConfigDecoding(t *testing.T) {
	eachMode(t, func(t *testing.T, f *fixture) {
		labels := map[string]interface{}{
			"scopes": "mcp,tools", "clockSkew": "45s", "cacheSize": "500", "keepAuthorization": "true",
			"algorithms": "ES256", "maxTokenBytes": "4096", "revocationPollInterval": "1",
			"headers": map[string]interface{}{"userId": "X-Github-Id"},
		}
		h, be := f.handler(labels)
		code, ch := status(h, f.iss.sign("es", f.iss.claims(testResource)))
		assert.Equal(t, 403, code, "scopes came from a comma-separated string")
		assert.Contains(t, ch, `scope="mcp tools"`)
		ok := f.iss.claims(testResource)
		ok["scope"] = "mcp tools"
		code, _ = status(h, f.iss.sign("es", ok))
		assert.Equal(t, 200, code)
		_, hdr := be.seen()
		assert.Equal(t, "1234567", hdr.Get("X-Github-Id"))
		assert.True(t, strings.HasPrefix(hdr.Get("Authorization"), "Bearer "), "keepAuthorization came from a string")
		code, ch = status(h, f.iss.sign("rsa", ok))
		assert.Equal(t, 401, code)
		assert.Contains(t, ch, "alg RS256 is not accepted", "algorithms came from a string")

		yamlTyped := map[string]interface{}{
			"scopes": []interface{}{"mcp"}, "clockSkew": 45, "cacheSize": 500, "keepAuthorization": false,
			"algorithms": []interface{}{"RS256"}, "scopesSupported": []interface{}{"mcp", "tools"},
		}
		h, _ = f.handler(yamlTyped)
		code, ch = status(h, f.iss.sign("rsa", f.iss.claims(testResource)))
		assert.Equal(t, 200, code, ch)
		code, ch = status(h, f.iss.sign("es", f.iss.claims(testResource)))
		assert.Equal(t, 401, code, "a one-item list must replace the default, not merge with it")
		assert.Contains(t, ch, "alg ES256 is not accepted")
		rec := do(h, http.MethodGet, "/.well-known/oauth-protected-resource/everything/mcp", nil)
		assert.Contains(t, rec.Body.String(), `"scopes_supported":["mcp","tools"]`)
	})
}
