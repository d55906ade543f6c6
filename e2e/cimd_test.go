package e2e

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The TypeScript SDK client, given a Client ID Metadata Document URL, skips registration: it uses the URL as its
// client_id because the authorization server advertises support, and the server fetches the document.
func TestClientMetadataDocumentClient(t *testing.T) {
	docs := httptest.NewUnstartedServer(nil)
	docURL := "https://" + docs.Listener.Addr().String() + "/mcp-client.json"
	docs.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mcp-client.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": docURL, "client_name": "Gateway end-to-end test (CIMD)",
			"redirect_uris": []string{"http://127.0.0.1:39999/callback"}, "grant_types": []string{"authorization_code", "refresh_token"},
			"response_types": []string{"code"}, "token_endpoint_auth_method": "none"})
	})
	docs.StartTLS()
	t.Cleanup(docs.Close)
	// Both the authorization server and Node trust the test's certificate; the document is on loopback, which only
	// the development flag allows.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: docs.Certificate().Raw}), 0o600))
	s := startStack(t, "path", "--cimd-ca-file", ca, "--cimd-allow-private-addresses")

	run := runClientWith(t, []string{"CLIENT_METADATA_URL=" + docURL, "NODE_EXTRA_CA_CERTS=" + ca}, s.URLs["everything"])
	assert.Equal(t, docURL, run.ClientID, "the document URL is the client_id")
	auth, err := url.Parse(run.AuthorizationURL)
	require.NoError(t, err)
	assert.Equal(t, docURL, auth.Query().Get("client_id"))
	require.NotEmpty(t, run.Result.Content)
	assert.Equal(t, "Echo: hello through the gateway", run.Result.Content[0].Text)
	assert.True(t, run.Refreshed)
	as := scrapeMetrics(t, s.Metrics["authserver"])
	assert.Zero(t, as.value("authserver_client_registrations_total", "outcome", "registered"), "no dynamic registration")
}
