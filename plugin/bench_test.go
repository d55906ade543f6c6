package plugin

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// nopBackend is the cheapest possible next handler, so the benchmarks measure the middleware alone.
type nopBackend struct{}

func (nopBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }

// benchFixture builds a ready middleware in one mode.
func benchFixture(b *testing.B, build buildFunc) (*testIssuer, http.Handler) {
	t := &testing.T{}
	iss := newTestIssuer(b)
	iss.addES256("es")
	f := &fixture{t: t, iss: iss, build: build}
	h, err := build(b, f.config(map[string]interface{}{"cacheSize": 1 << 20}), nopBackend{})
	require.NoError(b, err)
	tok := iss.sign("es", iss.claims(testResource))
	for i := 0; ; i++ {
		rec := do(h, http.MethodPost, mcpPath, bearer(tok))
		if rec.Code == http.StatusOK {
			break
		}
		require.Less(b, i, 100000, "middleware never became ready: %d", rec.Code)
	}
	return iss, h
}

// BenchmarkCachedToken is the steady state: a token seen before. It allocates a fresh request per iteration the
// way a server does, so compare against BenchmarkBaseline.
func BenchmarkCachedToken(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			iss, h := benchFixture(b, mode.build)
			tok := "Bearer " + iss.sign("es", iss.claims(testResource))
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
	}
	stopAllIssuers()
}

// BenchmarkBaseline is the same loop with the backend alone.
func BenchmarkBaseline(b *testing.B) {
	h := nopBackend{}
	req := httptest.NewRequest(http.MethodPost, "http://mcp.test"+mcpPath, nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		req.Header = http.Header{"Authorization": {"Bearer x"}, "X-User-Id": {"spoof"}}
		h.ServeHTTP(w, req)
	}
}

// BenchmarkFirstSeenToken is the full check of a token never seen before (signature, claims, cache insert).
func BenchmarkFirstSeenToken(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			iss, h := benchFixture(b, mode.build)
			toks := make([]string, b.N)
			for i := range toks {
				toks[i] = "Bearer " + iss.sign("es", iss.claims(testResource))
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
	}
	stopAllIssuers()
}

// BenchmarkES256Verify is the signature check alone (compiled stdlib), the floor of a first-seen token.
func BenchmarkES256Verify(b *testing.B) {
	iss := newTestIssuer(b)
	iss.addES256("es")
	keys, _, err := parseJWKS(iss.jwksJSON())
	require.NoError(b, err)
	pt, err := parseToken(iss.sign("es", iss.claims(testResource)), 8192, map[string]bool{"ES256": true})
	require.NoError(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := keys["es"].verify(pt.alg, pt.signingInput, pt.sig); err != nil {
			b.Fatal(err)
		}
	}
}
