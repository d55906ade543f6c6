package plugintest

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

func keyRotation(t *testing.T, f *Fixture) {
	h, _ := f.Handler(map[string]interface{}{"jwksMinRefreshInterval": "0s"})
	old := f.Iss.Sign("es", f.Iss.Claims(Resource))
	code, _ := Status(h, old)
	require.Equal(t, 200, code)

	// A new key is published, then signs: its first token makes the middleware fetch the JWKS again.
	f.Iss.AddES256("es2")
	code, ch := Status(h, f.Iss.Sign("es2", f.Iss.Claims(Resource)))
	require.Equal(t, 200, code, ch)

	// The old key is retired. The next fetch (here caused by an unknown kid) drops it, and with it the
	// cached tokens it signed.
	f.Iss.removeKey("es")
	f.Iss.AddES256("es3")
	code, ch = Status(h, f.Iss.Sign("es3", f.Iss.Claims(Resource)))
	require.Equal(t, 200, code, ch)
	code, ch = Status(h, old)
	assert.Equal(t, 401, code)
	assert.Contains(t, ch, "kid 'es' is not in the issuer's key set")
}

func unknownKidFloodIsRateLimited(t *testing.T, f *Fixture) {
	h, _ := f.Handler(map[string]interface{}{"jwksMinRefreshInterval": "1h"})
	before := atomic.LoadInt64(&f.Iss.jwks)
	for i := 0; i < 50; i++ {
		tok := f.Iss.Sign("es", f.Iss.Claims(Resource), func(tk *jwt.Token) { tk.Header["kid"] = randomJTI() })
		code, _ := Status(h, tok)
		require.Equal(t, 401, code)
	}
	assert.LessOrEqual(t, atomic.LoadInt64(&f.Iss.jwks)-before, int64(1), "unknown kids must not hammer the JWKS endpoint")
}

func revocationFeed(t *testing.T, f *Fixture) {
	h, _ := f.Handler(map[string]interface{}{"revocationPollInterval": "100ms"})
	c := f.Iss.Claims(Resource)
	tok := f.Iss.Sign("es", c)
	other := f.Iss.Sign("es", f.Iss.Claims(Resource))
	for i := 0; i < 2; i++ { // the second request is a cache hit
		code, _ := Status(h, tok)
		require.Equal(t, 200, code)
	}
	f.Iss.Revoke(c["jti"].(string), c["exp"].(int64))
	// The spec allows 10 s; with a 100 ms poll it takes a fraction of that.
	require.Eventually(t, func() bool { code, _ := Status(h, tok); return code == 401 }, 10*time.Second, 20*time.Millisecond)
	code, ch := Status(h, tok)
	assert.Equal(t, 401, code)
	assert.Contains(t, ch, "revoked")
	code, _ = Status(h, other)
	assert.Equal(t, 200, code, "other tokens stay valid")
}

func revocationFeedRestartsWhenCursorGoesBack(t *testing.T, f *Fixture) {
	for i := 0; i < 5; i++ {
		f.Iss.Revoke(randomJTI(), time.Now().Add(time.Hour).Unix())
	}
	h, _ := f.Handler(map[string]interface{}{"revocationPollInterval": "100ms"})
	c := f.Iss.Claims(Resource)
	tok := f.Iss.Sign("es", c)
	code, _ := Status(h, tok)
	require.Equal(t, 200, code)
	// The authorization server's store is replaced: its cursor starts again at 1, below the reader's 5.
	f.Iss.mu.Lock()
	f.Iss.seq, f.Iss.feed = 1, []feedItem{{seq: 1, jti: c["jti"].(string), exp: c["exp"].(int64)}}
	f.Iss.sinces = nil
	f.Iss.mu.Unlock()
	require.Eventually(t, func() bool { code, _ := Status(h, tok); return code == 401 }, 10*time.Second, 20*time.Millisecond)
	f.Iss.mu.Lock()
	defer f.Iss.mu.Unlock()
	assert.Contains(t, f.Iss.sinces, int64(5), "polled from its own cursor")
	assert.Contains(t, f.Iss.sinces, int64(0), "then started over")
}

// revocationFeedPages: a feed longer than one page (the authserver pages at 1000 entries) is read to its end
// before the first token is judged, so a middleware that starts while many tokens are revoked knows all of them
// (a feed that once outgrew one answer left every middleware without revocations).
func revocationFeedPages(t *testing.T, f *Fixture) {
	c := f.Iss.Claims(Resource)
	f.Iss.mu.Lock()
	f.Iss.page = 10
	f.Iss.mu.Unlock()
	for i := 0; i < 24; i++ {
		f.Iss.Revoke(randomJTI(), time.Now().Add(time.Hour).Unix())
	}
	f.Iss.Revoke(c["jti"].(string), c["exp"].(int64)) // the 25th entry: on the third page
	// A long poll interval: everything must come from the first poll.
	h, _ := f.Handler(map[string]interface{}{"revocationPollInterval": "1h"})
	code, ch := Status(h, f.Iss.Sign("es", c))
	assert.Equal(t, 401, code, "a jti on the feed's last page is revoked from the start")
	assert.Contains(t, ch, "revoked")
	f.Iss.mu.Lock()
	defer f.Iss.mu.Unlock()
	assert.Equal(t, []int64{0, 10, 20}, f.Iss.sinces, "the pages are followed by cursor")
}

// revocationFeedMaxLag: with revocationMaxLag set, a feed that stays unreadable makes every token, cached ones
// included, get 503 rather than being accepted without revocations; once it answers again, tokens pass.
func revocationFeedMaxLag(t *testing.T, f *Fixture) {
	h, _ := f.Handler(map[string]interface{}{"revocationPollInterval": "100ms", "revocationMaxLag": "1s"})
	tok := f.Iss.Sign("es", f.Iss.Claims(Resource))
	for i := 0; i < 2; i++ {
		code, _ := Status(h, tok)
		require.Equal(t, 200, code)
	}
	atomic.StoreInt64(&f.Iss.failFd, 1)
	require.Eventually(t, func() bool { code, _ := Status(h, tok); return code == 503 }, 10*time.Second, 20*time.Millisecond,
		"a cached token is refused once the feed is stale")
	rec := do(h, http.MethodPost, mcpPath, bearer(f.Iss.Sign("es", f.Iss.Claims(Resource))))
	assert.Equal(t, 503, rec.Code, "and so is a new one")
	assert.Contains(t, rec.Body.String(), "revocation feed")
	assert.Equal(t, "2", rec.Header().Get("Retry-After"))
	atomic.StoreInt64(&f.Iss.failFd, 0)
	require.Eventually(t, func() bool { code, _ := Status(h, tok); return code == 200 }, 10*time.Second, 20*time.Millisecond)
}

func unavailableUntilKeysLoad(t *testing.T, f *Fixture) {
	atomic.StoreInt64(&f.Iss.failJW, 1)
	h, err := f.build(t, f.Config(nil), &Backend{})
	require.NoError(t, err, "New must not wait for, or fail on, an unreachable key set")
	tok := f.Iss.Sign("es", f.Iss.Claims(Resource))
	rec := do(h, http.MethodPost, mcpPath, bearer(tok))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "2", rec.Header().Get("Retry-After"))
	assert.Contains(t, rec.Body.String(), "temporarily_unavailable")
	code, _ := Status(h, "")
	assert.Equal(t, 400, code, "an empty token is still judged without keys")
	rec = do(h, http.MethodPost, mcpPath, nil)
	assert.Equal(t, 401, rec.Code, "a request without a token is challenged without keys")

	atomic.StoreInt64(&f.Iss.failJW, 0)
	require.Eventually(t, func() bool { code, _ := Status(h, tok); return code == 200 }, 10*time.Second, 20*time.Millisecond)
}

func reloadSharesKeysAndCache(t *testing.T, f *Fixture) {
	h1, _ := f.Handler(nil)
	tok := f.Iss.Sign("es", f.Iss.Claims(Resource))
	code, _ := Status(h1, tok)
	require.Equal(t, 200, code)
	fetches := atomic.LoadInt64(&f.Iss.jwks)
	// A configuration reload builds every middleware again.
	for i := 0; i < 20; i++ {
		h, err := f.build(t, f.Config(nil), &Backend{})
		require.NoError(t, err)
		code, _ := Status(h, tok) // no 503: the keys are already there
		require.Equal(t, 200, code)
	}
	assert.Equal(t, fetches, atomic.LoadInt64(&f.Iss.jwks), "a reload must not fetch the JWKS again")
}

func configuredEndpointsSkipDiscovery(t *testing.T, f *Fixture) {
	h, _ := f.Handler(map[string]interface{}{"jwksUrl": f.Iss.URL + "/.well-known/jwks.json", "revocationFeedUrl": "off"})
	code, _ := Status(h, f.Iss.Sign("es", f.Iss.Claims(Resource)))
	assert.Equal(t, 200, code)
	assert.Zero(t, atomic.LoadInt64(&f.Iss.meta), "no metadata fetch when both endpoints are configured")
	assert.Zero(t, atomic.LoadInt64(&f.Iss.feeds), "no feed polling when it is off")
}

func discoveryRefusesForeignIssuerMetadata(t *testing.T, f *Fixture) {
	// The metadata names the test server's URL; an issuer configured with a different spelling must not
	// adopt it (RFC 8414 §3.3), so keys never load.
	cfg := f.Config(map[string]interface{}{"issuer": strings.Replace(f.Iss.URL, "127.0.0.1", "localhost", 1)})
	h, err := f.build(t, cfg, &Backend{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return atomic.LoadInt64(&f.Iss.meta) > 0 }, 10*time.Second, 10*time.Millisecond)
	code, _ := Status(h, f.Iss.Sign("es", f.Iss.Claims(Resource)))
	assert.Equal(t, 503, code)
	assert.Zero(t, atomic.LoadInt64(&f.Iss.jwks))
}

func configErrors(t *testing.T, f *Fixture) {
	cases := []struct {
		cfg  map[string]interface{}
		want string
	}{
		{map[string]interface{}{"resource": Resource}, "issuer is required"},
		{map[string]interface{}{"issuer": "https://auth.example.com/", "resource": Resource}, "must not end with /"},
		{map[string]interface{}{"issuer": "auth.example.com", "resource": Resource}, "must be an http or https URL"},
		{map[string]interface{}{"issuer": "https://auth.example.com"}, "resource is required"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": Resource + "#x"}, "fragment"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": Resource, "clockSkew": "soon"}, "clockSkew"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": Resource, "algorithms": "HS256"}, `"HS256" is not supported`},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": Resource, "headers": map[string]interface{}{"userId": "X User"}}, "not a valid header name"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": Resource, "scopes": `mcp "x"`}, "not a valid scope"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": Resource, "cacheSize": "many"}, "cannot parse 'CacheSize' as int"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": Resource, "cacheMemory": "lots"}, "cacheMemory: not a size"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": Resource, "cacheMemory": "512KiB"}, "below the minimum 1MiB"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": Resource, "revocationMaxLag": "later"}, "revocationMaxLag"},
		{map[string]interface{}{"issuer": "https://auth.example.com", "resource": Resource, "revocationFeedUrl": "off", "revocationMaxLag": "1m"}, "feed is off"},
	}
	for _, c := range cases {
		_, err := f.build(t, c.cfg, &Backend{})
		require.Error(t, err, "%v", c.cfg)
		assert.Contains(t, err.Error(), c.want)
	}
}

// configDecoding feeds configurations the way Traefik's providers deliver them: docker labels give strings
// only (lists comma-separated), YAML gives typed values.
func configDecoding(t *testing.T, f *Fixture) {
	labels := map[string]interface{}{
		"scopes": "mcp,tools", "clockSkew": "45s", "cacheSize": "500", "cacheMemory": "2MiB", "keepAuthorization": "true",
		"algorithms": "ES256", "maxTokenBytes": "4096", "revocationPollInterval": "1",
		"headers": map[string]interface{}{"userId": "X-Github-Id"},
	}
	h, be := f.Handler(labels)
	code, ch := Status(h, f.Iss.Sign("es", f.Iss.Claims(Resource)))
	assert.Equal(t, 403, code, "scopes came from a comma-separated string")
	assert.Contains(t, ch, `scope="mcp tools"`)
	ok := f.Iss.Claims(Resource)
	ok["scope"] = "mcp tools"
	code, _ = Status(h, f.Iss.Sign("es", ok))
	assert.Equal(t, 200, code)
	_, hdr := be.Seen()
	assert.Equal(t, "1234567", hdr.Get("X-Github-Id"))
	assert.True(t, strings.HasPrefix(hdr.Get("Authorization"), "Bearer "), "keepAuthorization came from a string")
	code, ch = Status(h, f.Iss.Sign("rsa", ok))
	assert.Equal(t, 401, code)
	assert.Contains(t, ch, "alg RS256 is not accepted", "algorithms came from a string")

	yamlTyped := map[string]interface{}{
		"scopes": []interface{}{"mcp"}, "clockSkew": 45, "cacheSize": 500, "cacheMemory": 4194304, "keepAuthorization": false,
		"algorithms": []interface{}{"RS256"}, "scopesSupported": []interface{}{"mcp", "tools"},
	}
	h, _ = f.Handler(yamlTyped)
	code, ch = Status(h, f.Iss.Sign("rsa", f.Iss.Claims(Resource)))
	assert.Equal(t, 200, code, ch)
	code, ch = Status(h, f.Iss.Sign("es", f.Iss.Claims(Resource)))
	assert.Equal(t, 401, code, "a one-item list must replace the default, not merge with it")
	assert.Contains(t, ch, "alg ES256 is not accepted")
	rec := do(h, http.MethodGet, "/.well-known/oauth-protected-resource/everything/mcp", nil)
	assert.Contains(t, rec.Body.String(), `"scopes_supported":["mcp","tools"]`)
}
