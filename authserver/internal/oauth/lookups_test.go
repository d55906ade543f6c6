package oauth_test

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
)

// failingHost is an https host the env's fetcher trusts: a private_key_jwt client's document at /pkj/client.json
// whose key set, like every other path, answers 500. It counts the requests it gets, by path.
type failingHost struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newFailingHost(t *testing.T, e *env) *failingHost {
	h := &failingHost{hits: map[string]int{}}
	h.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.hits[r.URL.Path]++
		h.mu.Unlock()
		if r.URL.Path == "/pkj/client.json" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"client_id": "https://" + r.Host + r.URL.Path, "client_name": "Agent",
				"redirect_uris": []string{redirectURI}, "grant_types": []string{"authorization_code", "refresh_token"},
				"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://" + r.Host + "/pkj/jwks.json"})
			return
		}
		w.Header().Set("Content-Type", "text/html")
		http.Error(w, "<h1>internal error at db-7.corp</h1>", http.StatusInternalServerError)
	}))
	t.Cleanup(h.Close)
	pool := x509.NewCertPool()
	pool.AddCert(h.Certificate())
	f := clientmeta.New(clientmeta.Config{AllowPrivateAddresses: true, RootCAs: pool})
	e.docs, e.keys = f, f
	return h
}

func (h *failingHost) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.hits {
		n += c
	}
	return n
}

func (h *failingHost) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[path]
}

// post sends an anonymous form to an endpoint clients authenticate at, as if from the address from (through the
// trusted proxy; "" : the test's own).
func (e *env) post(endpoint string, form url.Values, from string) (int, map[string]any, http.Header) {
	req, _ := http.NewRequest(http.MethodPost, e.issuer+endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if from != "" {
		req.Header.Set("X-Forwarded-For", from)
	}
	resp, err := e.http.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode != http.StatusOK || endpoint != "/revoke" {
		require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&out))
	}
	return resp.StatusCode, out, resp.Header
}

// A client_id or jwks_uri that fails to fetch is fetched once for a flood of anonymous requests naming it (the
// failure is cached), the caller is told only that it could not be fetched, and what anonymous requests make this
// server fetch is limited per address.
func TestClientLookupsBeforeAuthentication(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	host := newFailingHost(t, e)
	e.start("octo")
	broken := host.URL + "/broken/client.json"

	for i := range 99 {
		endpoint := []string{"/token", "/revoke", "/introspect"}[i%3]
		form := refreshForm(broken, "x")
		if endpoint != "/token" {
			form = url.Values{"client_id": {broken}, "token": {"x"}}
		}
		status, out, _ := e.post(endpoint, form, "")
		require.Equal(t, http.StatusUnauthorized, status, endpoint)
		assert.Equal(t, "invalid_client", out["error"])
		desc, _ := out["error_description"].(string)
		assert.Contains(t, desc, broken+" could not be fetched")
		for _, leak := range []string{"500", "text/html", "db-7.corp"} {
			assert.NotContains(t, desc, leak, "what the other host answered is not passed on")
		}
	}
	assert.Equal(t, 1, host.total(), "99 anonymous requests, 1 fetch")

	// A private_key_jwt client whose key set fails: the document and the key set are fetched once each.
	pkj, signing := host.URL+"/pkj/client.json", rsaPair(t, "k")
	for range 20 {
		status, out, _ := e.post("/token", withAssertion(refreshForm(pkj, "x"), signing.assertion(t, pkj, e.issuer)), "")
		require.Equal(t, http.StatusUnauthorized, status)
		assert.Contains(t, out["error_description"], "could not be fetched")
		assert.NotContains(t, out["error_description"], "500")
	}
	assert.Equal(t, 1, host.count("/pkj/client.json"))
	assert.Equal(t, 1, host.count("/pkj/jwks.json"), "20 requests, 1 fetch of the key set")

	// Look-ups that fetch are limited per address; those answered from the cache are not.
	e.tweak = func(c *oauth.Config) {
		c.ClientFetchPerMinute = 10
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	e.start("octo")
	before := host.total()
	limited := 0
	for i := range 15 {
		status, out, h := e.post("/token", refreshForm(host.URL+"/flood/"+string(rune('a'+i))+".json", "x"), "192.0.2.1")
		if status == http.StatusTooManyRequests {
			limited++
			assert.Equal(t, "temporarily_unavailable", out["error"])
			assert.Contains(t, out["error_description"], "too many client metadata documents and key sets fetched")
			assert.Equal(t, "6", h.Get("Retry-After"), "one fetch comes back every 6 s at 10 a minute")
			continue
		}
		assert.Equal(t, http.StatusUnauthorized, status)
	}
	assert.Equal(t, 5, limited, "a burst of 10, then 429")
	assert.Equal(t, before+10, host.total())
	status, _, _ := e.post("/introspect", url.Values{"client_id": {broken}, "token": {"x"}}, "192.0.2.1")
	assert.Equal(t, http.StatusUnauthorized, status, "a cached failure costs nothing")
	status, _, _ = e.post("/revoke", url.Values{"client_id": {host.URL + "/other.json"}, "token": {"x"}}, "192.0.2.2")
	assert.Equal(t, http.StatusUnauthorized, status, "another address has its own limit")
	assert.Equal(t, before+11, host.total())
}
