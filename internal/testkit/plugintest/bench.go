package plugintest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// NopBackend is the cheapest possible next handler, so the benchmarks measure the middleware alone.
type NopBackend struct{}

func (NopBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }

// benchFixture builds a ready middleware in one mode.
func benchFixture(b *testing.B, build BuildFunc) (*Issuer, http.Handler) {
	iss := NewIssuer(b)
	iss.AddES256("es")
	h, err := build(b, config(iss.URL, map[string]interface{}{"cacheSize": 1 << 20}), NopBackend{})
	require.NoError(b, err)
	tok := iss.Sign("es", iss.Claims(Resource))
	for i := 0; ; i++ {
		rec := do(h, http.MethodPost, mcpPath, bearer(tok))
		if rec.Code == http.StatusOK {
			break
		}
		require.Less(b, i, 100000, "middleware never became ready: %d", rec.Code)
	}
	return iss, h
}

// BenchCachedToken is the steady state: a token seen before. It allocates a fresh request per iteration the way a
// server does, so compare against the same loop without the middleware (BenchmarkBaseline in plugin/).
func BenchCachedToken(b *testing.B, mode Mode) {
	b.Run(mode.Name, func(b *testing.B) {
		iss, h := benchFixture(b, mode.Build)
		tok := "Bearer " + iss.Sign("es", iss.Claims(Resource))
		req := httptest.NewRequest(http.MethodPost, "http://mcp.test"+mcpPath, nil)
		w := httptest.NewRecorder()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			req.Header = http.Header{"Authorization": {tok}, "X-User-Id": {"spoof"}}
			h.ServeHTTP(w, req)
		}
		b.StopTimer()
		require.Equal(b, http.StatusOK, w.Code)
	})
	mode.StopAll()
}

// BenchFirstSeenToken is the full check of a token never seen before (signature, claims, cache insert).
func BenchFirstSeenToken(b *testing.B, mode Mode) {
	b.Run(mode.Name, func(b *testing.B) {
		iss, h := benchFixture(b, mode.Build)
		toks := make([]string, b.N)
		for i := range toks {
			toks[i] = "Bearer " + iss.Sign("es", iss.Claims(Resource))
		}
		req := httptest.NewRequest(http.MethodPost, "http://mcp.test"+mcpPath, nil)
		w := httptest.NewRecorder()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			req.Header = http.Header{"Authorization": {toks[i]}}
			h.ServeHTTP(w, req)
		}
		b.StopTimer()
		require.Equal(b, http.StatusOK, w.Code)
	})
	mode.StopAll()
}
