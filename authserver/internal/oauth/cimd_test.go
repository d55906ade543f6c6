package oauth_test

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
)

// clientDocs serves client metadata documents over https with a certificate the authorization server trusts.
func clientDocs(t *testing.T, docs map[string]func(id string) map[string]any) *httptest.Server {
	mux := http.NewServeMux()
	for path, doc := range docs {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(doc("https://" + r.Host + r.URL.Path))
		})
	}
	ts := httptest.NewTLSServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func TestClientMetadataDocuments(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testClientMetadataDocuments(t, b) })
	}
}

func testClientMetadataDocuments(t *testing.T, b backendCase) {
	ts := clientDocs(t, map[string]func(string) map[string]any{
		"/editor/client.json": func(id string) map[string]any {
			return map[string]any{"client_id": id, "client_name": "Editor", "redirect_uris": []string{redirectURI},
				"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none"}
		},
		"/impostor.json": func(string) map[string]any {
			return map[string]any{"client_id": "https://editor.example.com/client.json", "client_name": "Editor", "redirect_uris": []string{redirectURI}}
		},
	})
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	e := newEnv(t, b, "octo")
	e.docs = clientmeta.New(clientmeta.Config{AllowPrivateAddresses: true, RootCAs: pool})
	e.start("octo")
	client := ts.URL + "/editor/client.json"

	var meta map[string]any
	resp, err := e.http.Get(e.issuer + "/.well-known/oauth-authorization-server")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&meta))
	resp.Body.Close()
	assert.Equal(t, true, meta["client_id_metadata_document_supported"])

	// The consent page names the host that published the document, and warns that a loopback-only client's name
	// proves nothing.
	o := e.browse(authQuery(client, newPKCE()), "")
	require.Equal(t, http.StatusOK, o.status, o.page)
	host, _ := url.Parse(ts.URL)
	assert.Contains(t, o.page, `<span class="host">`+host.Host+`</span>`)
	assert.Contains(t, o.page, "only returns to programs on your own computer")

	// The whole flow, with no registration: code, token, refresh.
	p := newPKCE()
	code := e.code(client, p)
	status, tok, _ := e.tokenRequest(exchange(client, code, p), "", "")
	require.Equal(t, http.StatusOK, status, tok)
	_, claims := jtiOf(t, tok["access_token"].(string))
	assert.Equal(t, client, claims["client_id"])
	status, refreshed, _ := e.tokenRequest(refreshForm(client, tok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusOK, status, refreshed)

	// Refusals: a document claiming another client_id, a redirect the document does not list, a secret.
	o = e.browse(authQuery(ts.URL+"/impostor.json", newPKCE()), "approve")
	assert.Equal(t, http.StatusBadRequest, o.status)
	assert.Nil(t, o.location, "never redirected")
	assert.Contains(t, o.page, "must equal the URL it is served from")
	o = e.browse(authQuery(client, newPKCE(), "redirect_uri", "https://attacker.example.com/cb"), "approve")
	assert.Equal(t, http.StatusBadRequest, o.status)
	assert.Contains(t, o.page, "Unregistered redirect address")
	status, out, _ := e.tokenRequest(refreshForm(ts.URL+"/impostor.json", "x"), "", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "invalid_client", out["error"])
	assert.Contains(t, out["error_description"], "must equal the URL")
	status, out, _ = e.tokenRequest(refreshForm(client, refreshed["refresh_token"].(string)), client, "secret")
	assert.Equal(t, http.StatusUnauthorized, status, "a document client authenticates with none only: %v", out)
}
