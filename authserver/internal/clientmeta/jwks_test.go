package clientmeta

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
)

func ecJWK(t *testing.T, kid string) jwk.Object {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	o, err := jwk.Key{ID: kid, Public: &k.PublicKey}.Encode()
	require.NoError(t, err)
	return o
}

// A document that declares private_key_jwt is accepted with its keys; the methods it also lists are kept only when
// this server accepts them.
func TestPrivateKeyJWTDocuments(t *testing.T) {
	key := ecJWK(t, "k1")
	ds := newDocServer(t, map[string]http.HandlerFunc{
		"/chatgpt.json": jsonDoc(func(id string) any {
			return map[string]any{"client_id": id, "client_name": "ChatGPT", "redirect_uris": []string{"https://chatgpt.com/connector/oauth/x"},
				"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "RS256",
				"jwks_uri":                              "https://chatgpt.com/oauth/jwks.json",
				"token_endpoint_auth_methods_supported": []string{"none", "private_key_jwt", "client_secret_basic"}}
		}),
		"/inline.json": jsonDoc(func(id string) any {
			return map[string]any{"client_id": id, "client_name": "x", "redirect_uris": []string{"https://a.example/cb"},
				"token_endpoint_auth_method": "none", "jwks": map[string]any{"keys": []any{key}},
				"token_endpoint_auth_methods_supported": []string{"private_key_jwt"}}
		}),
		"/nokeys.json": jsonDoc(func(id string) any {
			return map[string]any{"client_id": id, "client_name": "x", "redirect_uris": []string{"https://a.example/cb"},
				"token_endpoint_auth_method": "private_key_jwt"}
		}),
		"/both.json": jsonDoc(func(id string) any {
			return map[string]any{"client_id": id, "client_name": "x", "redirect_uris": []string{"https://a.example/cb"},
				"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a.example/jwks", "jwks": map[string]any{"keys": []any{key}}}
		}),
		"/httpkeys.json": jsonDoc(func(id string) any {
			return map[string]any{"client_id": id, "client_name": "x", "redirect_uris": []string{"https://a.example/cb"},
				"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://a.example/jwks"}
		}),
		"/hs256.json": jsonDoc(func(id string) any {
			return map[string]any{"client_id": id, "client_name": "x", "redirect_uris": []string{"https://a.example/cb"},
				"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a.example/jwks", "token_endpoint_auth_signing_alg": "HS256"}
		}),
		"/badset.json": jsonDoc(func(id string) any {
			return map[string]any{"client_id": id, "client_name": "x", "redirect_uris": []string{"https://a.example/cb"},
				"token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"keys": []any{map[string]any{"kty": "oct", "k": "c2VjcmV0"}}}}
		}),
	})
	f := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool()})
	ctx := context.Background()

	doc, err := f.Fetch(ctx, ds.URL+"/chatgpt.json")
	require.NoError(t, err)
	assert.Equal(t, AuthPrivateKeyJWT, doc.TokenEndpointAuthMethod)
	assert.Equal(t, "RS256", doc.TokenEndpointAuthSigningAlg)
	assert.Equal(t, []string{AuthNone}, doc.TokenEndpointAuthMethodsSupported, "none is kept as an alternative; a secret method is not")
	doc, err = f.Fetch(ctx, ds.URL+"/inline.json")
	require.NoError(t, err)
	assert.Equal(t, AuthNone, doc.TokenEndpointAuthMethod)
	assert.Equal(t, []string{AuthPrivateKeyJWT}, doc.TokenEndpointAuthMethodsSupported, "keys make private_key_jwt an alternative")

	for path, want := range map[string]string{
		"/nokeys.json":   "needs the client's public keys",
		"/both.json":     "must not both be present",
		"/httpkeys.json": "must be an https URL",
		"/hs256.json":    "its token_endpoint_auth_signing_alg is not accepted",
		"/badset.json":   "its jwks is not a usable JSON Web Key Set",
	} {
		_, err := f.Fetch(ctx, ds.URL+path)
		var me *Error
		require.ErrorAs(t, err, &me, path)
		assert.Contains(t, err.Error(), want, path)
	}
}

// Key sets come through the same guarded client (https, public addresses, size), are cached, and are fetched again
// for an unknown key id no more than once per minRefetch.
func TestJWKS(t *testing.T) {
	var current atomic.Value
	current.Store([]any{ecJWK(t, "k1")})
	ds := newDocServer(t, map[string]http.HandlerFunc{
		"/jwks.json": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/jwk-set+json")
			w.Header().Set("Cache-Control", "max-age=3600")
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": current.Load()})
		},
		"/empty.json": jsonDoc(map[string]any{"keys": []any{}}),
		"/html":       func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Content-Type", "text/html") },
	})
	f := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool()})
	ctx := context.Background()
	uri := ds.URL + "/jwks.json"

	keys, err := f.JWKS(ctx, uri, false)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.Equal(t, "k1", keys[0].ID)
	_, err = f.JWKS(ctx, uri, false)
	require.NoError(t, err)
	assert.EqualValues(t, 1, ds.hits.Load(), "cached")

	// The client rotates its key. A fresh read right after the first fetch is served from the cache (no flood);
	// once minRefetch has passed it fetches again.
	current.Store([]any{ecJWK(t, "k2")})
	keys, err = f.JWKS(ctx, uri, true)
	require.NoError(t, err)
	assert.Equal(t, "k1", keys[0].ID)
	assert.EqualValues(t, 1, ds.hits.Load())
	f.mu.Lock()
	f.cache["jwks "+uri].Value.(*entry).fetched = time.Now().Add(-minRefetch)
	f.mu.Unlock()
	keys, err = f.JWKS(ctx, uri, true)
	require.NoError(t, err)
	assert.Equal(t, "k2", keys[0].ID)
	assert.EqualValues(t, 2, ds.hits.Load())

	for u, want := range map[string]string{
		ds.URL + "/empty.json":        "is not a usable JSON Web Key Set",
		ds.URL + "/html":              "could not be fetched",
		"http://example.com/jwks":     "must be an https URL",
		"https://u:p@example.com/jwk": "must be an https URL without user information",
	} {
		_, err := f.JWKS(ctx, u, false)
		var me *Error
		require.ErrorAs(t, err, &me, u)
		assert.Contains(t, err.Error(), want, u)
	}

	// The SSRF protections apply: without the development flag a loopback key set is refused unfetched.
	guarded := New(Config{RootCAs: ds.pool()})
	hits := ds.hits.Load()
	_, err = guarded.JWKS(ctx, uri, false)
	assert.ErrorContains(t, err, "could not be fetched")
	assert.Equal(t, hits, ds.hits.Load())
	denied := New(Config{AllowPrivateAddresses: true, RootCAs: ds.pool(), DeniedHosts: []string{"127.0.0.1"}})
	_, err = denied.JWKS(ctx, uri, false)
	assert.ErrorContains(t, err, "does not accept client keys hosted at 127.0.0.1")
}
