// Package issuer is a stand-in authorization server for the edge benchmark: it serves metadata, a JWKS and an empty
// revocation feed as docs/architecture.md fixes them, and mints ES256 access tokens in the contract's format. The
// plugin's cost depends only on the token and key format, so the plugin is measured against this issuer; minting
// tens of thousands of first-seen tokens through the real authserver's browser flow would dominate the run.
package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer serves the discovery documents and signs tokens.
type Issuer struct {
	URL string // the issuer, e.g. http://127.0.0.1:41234
	key *ecdsa.PrivateKey
	kid string
	srv *http.Server
}

// Start listens on a free loopback port and serves until Close.
func Start() (*Issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate P-256 key: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	is := &Issuer{URL: "http://" + l.Addr().String(), key: key, kid: "bench-" + randomString(6)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", is.metadata)
	mux.HandleFunc("GET /.well-known/jwks.json", is.jwks)
	mux.HandleFunc("GET /revocations", is.revocations)
	is.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = is.srv.Serve(l) }()
	return is, nil
}

// Close stops the server.
func (is *Issuer) Close() error { return is.srv.Close() }

func writeJSON(w http.ResponseWriter, v any, cache string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cache)
	_ = json.NewEncoder(w).Encode(v)
}

func (is *Issuer) metadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{
		"issuer":                                is.URL,
		"authorization_endpoint":                is.URL + "/authorize",
		"token_endpoint":                        is.URL + "/token",
		"registration_endpoint":                 is.URL + "/register",
		"jwks_uri":                              is.URL + "/.well-known/jwks.json",
		"revocation_feed_endpoint":              is.URL + "/revocations",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"scopes_supported":                      []string{"mcp"},
	}, "public, max-age=300")
}

func (is *Issuer) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := is.key.PublicKey
	b, _ := pub.Bytes() // uncompressed point: 0x04 || X || Y
	writeJSON(w, map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": is.kid, "alg": "ES256", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(b[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(b[33:65]),
	}}}, "public, max-age=300")
}

func (is *Issuer) revocations(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{"cursor": 0, "revoked": []any{}, "poll_interval": 5}, "no-store")
}

// Mint signs an access token for resource (aud) with the contract's header and claims.
func (is *Issuer) Mint(resource string, userID int) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{
		"iss":       is.URL,
		"sub":       strconv.Itoa(userID),
		"aud":       resource,
		"client_id": "bench-client",
		"scope":     "mcp",
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
		"jti":       randomString(16),
		"username":  "bench-user-" + strconv.Itoa(userID),
		"name":      "Bench User",
		"email":     "bench@example.com",
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["typ"] = "at+jwt"
	t.Header["kid"] = is.kid
	s, err := t.SignedString(is.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// MintN mints n distinct tokens (distinct jti and sub) for resource.
func (is *Issuer) MintN(resource string, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		t, err := is.Mint(resource, 1000+i)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

func randomString(nBytes int) string {
	b := make([]byte, nBytes)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
