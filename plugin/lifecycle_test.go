package plugin

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/plugintest"
)

// The lifecycle tests that every mode runs are in internal/plugintest; these look inside the compiled middleware.

func TestReloadReusesCachedVerdicts(t *testing.T) {
	t.Cleanup(compiled.StopAll)
	f := plugintest.NewFixture(t, buildCompiled)
	h1, _ := f.Handler(nil)
	tok := f.Iss.Sign("es", f.Iss.Claims(plugintest.Resource))
	code, _ := plugintest.Status(h1, tok)
	require.Equal(t, 200, code)
	h2, err := buildCompiled(t, f.Config(nil), &plugintest.Backend{})
	require.NoError(t, err)
	m1, m2 := h1.(*Middleware), h2.(*Middleware)
	assert.Same(t, m1.cache, m2.cache)
	_, hit := m2.cache.hot.Load("Bearer " + tok)
	assert.True(t, hit, "the rebuilt middleware starts with a warm cache")

	// A different policy (another resource) gets its own cache.
	cfg := f.Config(map[string]interface{}{"resource": "http://mcp.test/memory/mcp"})
	h3, err := buildCompiled(t, cfg, &plugintest.Backend{})
	require.NoError(t, err)
	assert.NotSame(t, m1.cache, h3.(*Middleware).cache)
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
