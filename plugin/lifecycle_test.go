package plugin

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/plugintest"
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
	c.setLimits(1<<30, 3)
	put(c, "a", &cacheEntry{deadline: 102})
	put(c, "b", &cacheEntry{deadline: 105})
	put(c, "d", &cacheEntry{deadline: 103, denied: true})
	_, ok := c.hot.Load("d")
	assert.False(t, ok, "403 verdicts stay off the hot map")
	c.sweep(102)
	_, ok = c.hot.Load("a")
	assert.False(t, ok, "expired at its deadline")
	_, ok = c.hot.Load("b")
	assert.True(t, ok)
	assert.NotNil(t, c.deniedEntry("d", 102))
	// Full: the put makes room.
	put(c, "e", &cacheEntry{deadline: 200})
	put(c, "f", &cacheEntry{deadline: 200})
	c.mu.Lock()
	assert.LessOrEqual(t, c.n, 3)
	c.mu.Unlock()
	_, ok = c.hot.Load("f")
	assert.True(t, ok)
}

func TestCacheEvictsTheSoonestDeadlineFirst(t *testing.T) {
	c := newTokenCache(100)
	c.setLimits(1<<40, 4)
	for i, d := range []int64{150, 120, 180, 130} {
		put(c, fmt.Sprint("k", i), &cacheEntry{deadline: d, jti: fmt.Sprint("j", i)})
	}
	put(c, "k4", &cacheEntry{deadline: 200, jti: "j4"}) // over the count: back to 4 - 4/16
	for k, want := range map[string]bool{"k0": true, "k1": false, "k2": true, "k3": true, "k4": true} {
		_, ok := c.hot.Load(k)
		assert.Equal(t, want, ok, k)
	}

	// The memory bound: room for three entries of these keys; a fourth evicts the soonest ones until the cache is
	// a sixteenth under its bound.
	c = newTokenCache(100)
	c.setLimits(3*(entryOverhead+2), 0)
	for i, d := range []int64{150, 120, 180, 130} {
		put(c, fmt.Sprint("k", i), &cacheEntry{deadline: d, jti: fmt.Sprint("j", i)})
	}
	for k, want := range map[string]bool{"k0": true, "k1": false, "k2": true, "k3": false} {
		_, ok := c.hot.Load(k)
		assert.Equal(t, want, ok, k)
	}
	assert.Equal(t, 2, c.n)
	assert.Equal(t, int64(2*(entryOverhead+2)), c.bytes)

	// Everything expired: nothing left, nothing counted.
	c.sweep(1000)
	assert.Zero(t, c.n)
	assert.Zero(t, c.bytes)
	assert.Empty(t, c.byJti)
	assert.Empty(t, c.byDeadline)
}

func TestCachePurgesEverySpellingOfARevokedJti(t *testing.T) {
	c := newTokenCache(100)
	a, b, other := &cacheEntry{deadline: 200, jti: "j"}, &cacheEntry{deadline: 200, jti: "j"}, &cacheEntry{deadline: 200, jti: "k"}
	put(c, "Bearer x", a)
	put(c, "bearer x", b)
	put(c, "Bearer y", other)
	dup := &cacheEntry{deadline: 200, jti: "k"}
	put(c, "Bearer y", dup) // a second verification of the same token files nothing
	c.remove(dup)           // and removing it leaves the one filed
	c.purgeJtis(map[string]bool{"j": true})
	for k, want := range map[string]bool{"Bearer x": false, "bearer x": false, "Bearer y": true} {
		_, ok := c.hot.Load(k)
		assert.Equal(t, want, ok, k)
	}
	assert.Equal(t, 1, c.n)
	assert.Equal(t, int64(entryOverhead+len("Bearer y")), c.bytes)
}

// TestCacheMemoryPerToken holds the cache's memory estimate (entryOverhead plus the Authorization value) to what a
// cached token really costs compiled; plugin/yaegitest does the same under Yaegi.
func TestCacheMemoryPerToken(t *testing.T) {
	t.Cleanup(compiled.StopAll)
	per := plugintest.CacheMemoryPerToken(t, buildCompiled, 5000)
	t.Logf("compiled: %.0f bytes per cached token beyond its Authorization value (entryOverhead %d)", per, entryOverhead)
	assert.LessOrEqual(t, per, float64(entryOverhead))
}
