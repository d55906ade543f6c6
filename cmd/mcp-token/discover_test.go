package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeServer is an MCP server behind a gateway: 401 naming its metadata, the metadata (whose resource the test
// chooses), and the authorization server's metadata.
func fakeServer(t *testing.T, resource func(base string) string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("POST /everything/mcp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+srv.URL+`/.well-known/oauth-protected-resource/everything/mcp"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/everything/mcp", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"resource": resource(srv.URL), "authorization_servers": []string{srv.URL}})
	})
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "token_endpoint": srv.URL + "/token",
			"device_authorization_endpoint": srv.URL + "/device_authorization", "registration_endpoint": srv.URL + "/register"})
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// Issue 13, item 11: metadata that names another resource than the MCP URL mcp-token was given is refused (RFC 9728
// §3.3), so no token for some other server is fetched on the strength of this one's 401.
func TestDiscoverRefusesMetadataOfAnotherResource(t *testing.T) {
	ctx := context.Background()
	evil := fakeServer(t, func(string) string { return "https://bank.example.com/mcp" })
	_, err := discover(ctx, http.DefaultClient, evil.URL+"/everything/mcp")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "RFC 9728 §3.3")
	assert.Contains(t, err.Error(), "https://bank.example.com/mcp")

	sibling := fakeServer(t, func(base string) string { return base + "/memory/mcp" })
	_, err = discover(ctx, http.DefaultClient, sibling.URL+"/everything/mcp")
	assert.Error(t, err, "another MCP server on the same origin is another resource")

	good := fakeServer(t, func(base string) string { return base + "/everything/mcp" })
	s, err := discover(ctx, http.DefaultClient, good.URL+"/everything/mcp")
	require.NoError(t, err)
	assert.Equal(t, good.URL+"/everything/mcp", s.Resource)
	// Spellings of the same URL are the same resource.
	upper := strings.Replace(good.URL, "http://127.0.0.1", "HTTP://127.0.0.1", 1) + "/everything/mcp/"
	_, err = discover(ctx, http.DefaultClient, upper)
	assert.NoError(t, err)
}

func TestCanonicalURL(t *testing.T) {
	assert.Equal(t, "https://gw.example.com/everything/mcp", canonicalURL("HTTPS://GW.Example.com:443/everything/mcp/"))
	assert.Equal(t, "http://localhost:8080/mcp", canonicalURL("http://localhost:8080/mcp#x"))
	assert.NotEqual(t, canonicalURL("https://gw.example.com/Everything/mcp"), canonicalURL("https://gw.example.com/everything/mcp"),
		"paths are case-sensitive")
}
