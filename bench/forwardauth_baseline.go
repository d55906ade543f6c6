package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// forwardAuthVerifier is the ForwardAuth baseline: the service Traefik asks about every request, checking the token
// itself each time (no cache), as the reference design's Python service does. It is the benchmark's, not the
// product's: the gateway decides at the edge with the plugin only. It verifies what the plugin verifies on a first
// sight (ES256 signature by a key of the issuer's JWKS, typ at+jwt, iss, aud, exp and nbf with 30 s of skew, the
// scope) and answers 200 with the identity headers or 401; it does not read a revocation feed (a set lookup, next to
// nothing beside the signature).
type forwardAuthVerifier struct {
	issuer, resource, scope string
	keys                    map[string]*ecdsa.PublicKey
}

// verifyClaims are the access token's claims the verifier reads (docs/architecture.md).
type verifyClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Username string `json:"username"`
	Email    string `json:"email,omitempty"`
}

// startForwardAuthVerifier loads the issuer's keys and serves the verifier at <url>/verify on a loopback port until
// the section ends; it returns that URL.
func startForwardAuthVerifier(e *env, issuer, resource, scope string) (string, error) {
	keys, err := fetchJWKS(issuer + "/.well-known/jwks.json")
	if err != nil {
		return "", fmt.Errorf("read the authserver's JWKS: %w", err)
	}
	v := &forwardAuthVerifier{issuer: issuer, resource: strings.ToLower(resource), scope: scope, keys: keys}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen for the ForwardAuth verifier: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/verify", v)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	e.onEnd(func() { _ = srv.Shutdown(context.Background()) })
	return "http://" + l.Addr().String() + "/verify", nil
}

func (v *forwardAuthVerifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Uri"), "?")
	u := strings.ToLower(r.Header.Get("X-Forwarded-Proto") + "://" + r.Header.Get("X-Forwarded-Host") + path)
	if u != v.resource && !strings.HasPrefix(u, v.resource+"/") {
		http.Error(w, "not a protected resource", http.StatusForbidden)
		return
	}
	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || raw == "" {
		w.Header().Set("WWW-Authenticate", `Bearer scope="`+v.scope+`"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	c := &verifyClaims{}
	_, err := jwt.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
			return nil, fmt.Errorf("not an access token (typ %q)", typ)
		}
		kid, _ := t.Header["kid"].(string)
		if k := v.keys[kid]; k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("unknown key %q", kid)
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(v.issuer), jwt.WithAudience(v.resource),
		jwt.WithExpirationRequired(), jwt.WithLeeway(30*time.Second))
	if err != nil || !slices.Contains(strings.Fields(c.Scope), v.scope) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h := w.Header()
	h.Set("X-User-Id", c.Subject)
	h.Set("X-User-Name", c.Username)
	if c.Email != "" {
		h.Set("X-User-Email", c.Email)
	}
	h.Set("X-Client-Id", c.ClientID)
	h.Set("X-Scopes", c.Scope)
	w.WriteHeader(http.StatusOK)
}

// fetchJWKS reads a JWK Set and keeps its P-256 keys by kid.
func fetchJWKS(url string) (map[string]*ecdsa.PublicKey, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	var set struct {
		Keys []struct{ Kty, Crv, Kid, X, Y string } `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" {
			continue
		}
		x, errX := base64.RawURLEncoding.DecodeString(k.X)
		y, errY := base64.RawURLEncoding.DecodeString(k.Y)
		if errX != nil || errY != nil {
			return nil, fmt.Errorf("GET %s: key %q: bad coordinates", url, k.Kid)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("GET %s: key %q: %w", url, k.Kid, err)
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("GET %s: no P-256 key", url)
	}
	return keys, nil
}
