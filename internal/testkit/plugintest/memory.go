package plugintest

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// CacheMemoryPerToken is the heap a middleware built by build keeps per cached token beyond the Authorization value
// itself: it caches n first-seen tokens of the authserver's format through ServeHTTP and compares the live heap
// before and after (the header values are made before, so what remains is the cache's own memory).
func CacheMemoryPerToken(t testing.TB, build BuildFunc, n int) float64 {
	iss := NewIssuer(t)
	iss.AddES256("es")
	h, err := build(t, config(iss.URL, map[string]interface{}{"cacheMemory": "1GiB"}), NopBackend{})
	require.NoError(t, err)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "Bearer " + iss.Sign("es", iss.Claims(Resource))
	}
	req := httptest.NewRequest(http.MethodPost, "http://mcp.test"+mcpPath, nil)
	for i := 0; ; i++ {
		req.Header = http.Header{"Authorization": {keys[0]}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			break
		}
		require.Less(t, i, 100000, "middleware never became ready: %d", rec.Code)
	}
	before := liveHeap()
	for _, k := range keys[1:] {
		req.Header = http.Header{"Authorization": {k}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
	}
	after := liveHeap()
	runtime.KeepAlive(keys)
	return float64(after-before) / float64(n-1)
}

func liveHeap() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
