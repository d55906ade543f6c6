package clientprofile

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChallengeParams(t *testing.T) {
	p := challengeParams(`Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/x/mcp", scope="mcp admin", error=invalid_token`)
	assert.Equal(t, "https://gw.example.com/.well-known/oauth-protected-resource/x/mcp", p["resource_metadata"])
	assert.Equal(t, "mcp admin", p["scope"])
	assert.Equal(t, "invalid_token", p["error"])
	assert.Empty(t, challengeParams(`Basic realm="x"`), "only a Bearer challenge counts, as in the SDKs")
}

func TestCallbackID(t *testing.T) {
	// 9 bytes of SHA-256, base64url: 12 characters, stable for one URL, different for another.
	id := CallbackID("https://gw.example.com/everything/mcp")
	assert.Len(t, id, 12)
	assert.Equal(t, id, CallbackID("https://gw.example.com/everything/mcp"))
	assert.NotEqual(t, id, CallbackID("https://gw.example.com/memory/mcp"))
}

// A browser preflights a request with non-simple headers, and only such a request; the profile stops when the
// preflight or the answer does not allow its origin.
func TestBrowserPreflight(t *testing.T) {
	allow := true
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer ts.Close()
	s := New(MCPInspector(), Env{HTTP: ts.Client()})
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/.well-known/oauth-authorization-server", nil)
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	resp, err := s.do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"/.well-known/oauth-authorization-server"}, s.Res.Preflights)
	simple, _ := http.NewRequest(http.MethodPost, ts.URL+"/token", nil)
	simple.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = s.do(simple)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Len(t, s.Res.Preflights, 1, "a form POST is a simple request")

	allow = false
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/x", nil)
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	_, err = s.do(req)
	assert.ErrorContains(t, err, "origin not allowed")
}
