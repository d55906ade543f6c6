package plugin

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/plugintest"
)

// BenchmarkCachedToken and BenchmarkFirstSeenToken run here compiled; plugin/yaegitest runs them under Yaegi.
func BenchmarkCachedToken(b *testing.B) { plugintest.BenchCachedToken(b, compiled) }

func BenchmarkFirstSeenToken(b *testing.B) { plugintest.BenchFirstSeenToken(b, compiled) }

// BenchmarkBaseline is BenchmarkCachedToken's loop with the backend alone.
func BenchmarkBaseline(b *testing.B) {
	h := plugintest.NopBackend{}
	req := httptest.NewRequest(http.MethodPost, "http://mcp.test/everything/mcp", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		req.Header = http.Header{"Authorization": {"Bearer x"}, "X-User-Id": {"spoof"}}
		h.ServeHTTP(w, req)
	}
}

// BenchmarkES256Verify is the signature check alone (compiled stdlib), the floor of a first-seen token.
func BenchmarkES256Verify(b *testing.B) {
	iss := plugintest.NewIssuer(b)
	iss.AddES256("es")
	keys, _, err := parseJWKS(iss.JWKS())
	require.NoError(b, err)
	pt, err := parseToken(iss.Sign("es", iss.Claims(plugintest.Resource)), 8192, map[string]bool{"ES256": true})
	require.NoError(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := keys["es"].verify(pt.alg, pt.signingInput, pt.sig); err != nil {
			b.Fatal(err)
		}
	}
}
