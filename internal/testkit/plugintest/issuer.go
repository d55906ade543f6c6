package plugintest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// Issuer is a stand-in authorization server: metadata, JWKS and revocation feed as docs/architecture.md fixes
// them, with keys generated in the process. The plugin's tests use it, and so does the benchmark suite: the plugin's
// cost depends only on the token and key format, and minting thousands of tokens through the real authserver's
// browser flow would dominate a run.
type Issuer struct {
	srv    *httptest.Server
	URL    string
	mu     sync.Mutex
	keys   map[string]crypto.Signer // kid -> private key, published in the JWKS
	jwks   int64                    // JWKS fetches (atomic)
	feeds  int64                    // feed fetches (atomic)
	meta   int64                    // metadata fetches (atomic)
	failJW int64                    // >0: answer the JWKS with 500 (atomic)
	failFd int64                    // >0: answer the revocation feed with 500 (atomic)
	page   int                      // entries per feed answer, with "more" and a cursor as the authserver pages (0: all)
	seq    int64
	feed   []feedItem
	sinces []int64
}

type feedItem struct {
	seq int64
	jti string
	exp int64
}

// NewIssuer is StartIssuer for a test: it stops when the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	ti, err := StartIssuer()
	require.NoError(t, err)
	t.Cleanup(ti.Close)
	return ti
}

// StartIssuer serves an issuer with no keys on a loopback port until Close.
func StartIssuer() (*Issuer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("issuer: listen: %w", err)
	}
	ti := &Issuer{keys: map[string]crypto.Signer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&ti.meta, 1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":                   ti.URL,
			"jwks_uri":                 ti.URL + "/.well-known/jwks.json",
			"revocation_feed_endpoint": ti.URL + "/revocations",
		})
	})
	mux.HandleFunc("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&ti.jwks, 1)
		if atomic.LoadInt64(&ti.failJW) > 0 {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(ti.JWKS())
	})
	mux.HandleFunc("/revocations", func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&ti.feeds, 1)
		if atomic.LoadInt64(&ti.failFd) > 0 {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		ti.mu.Lock()
		ti.sinces = append(ti.sinces, since)
		var items []map[string]interface{}
		cursor, more := ti.seq, false
		for _, it := range ti.feed {
			if it.seq > since {
				if ti.page > 0 && len(items) == ti.page {
					more = true
					break
				}
				items = append(items, map[string]interface{}{"jti": it.jti, "exp": it.exp})
				if ti.page > 0 && len(items) == ti.page {
					cursor = it.seq
				}
			}
		}
		if !more {
			cursor = ti.seq
		}
		ti.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		body := map[string]interface{}{"cursor": cursor, "revoked": items, "poll_interval": 5}
		if more {
			body["more"] = true
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	ti.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	ti.srv.Start()
	ti.URL = ti.srv.URL
	return ti, nil
}

// Close stops the server.
func (ti *Issuer) Close() { ti.srv.Close() }

// AddES256 publishes a new P-256 key as kid.
func (ti *Issuer) AddES256(kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		// Only an unsupported curve fails (crypto/rand never returns an error), so this is unreachable.
		panic(fmt.Sprintf("generate a P-256 key: %v", err))
	}
	ti.addKey(kid, k)
}

func (ti *Issuer) addKey(kid string, k crypto.Signer) {
	ti.mu.Lock()
	ti.keys[kid] = k
	ti.mu.Unlock()
}

func (ti *Issuer) removeKey(kid string) {
	ti.mu.Lock()
	delete(ti.keys, kid)
	ti.mu.Unlock()
}

func (ti *Issuer) key(kid string) crypto.Signer {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.keys[kid]
}

// Revoke publishes jti in the feed, as the authserver does when a token is revoked.
func (ti *Issuer) Revoke(jti string, exp int64) {
	ti.mu.Lock()
	ti.seq++
	ti.feed = append(ti.feed, feedItem{seq: ti.seq, jti: jti, exp: exp})
	ti.mu.Unlock()
}

// JWKS is the key set document the issuer serves.
func (ti *Issuer) JWKS() []byte {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	var keys []map[string]string
	for kid, k := range ti.keys {
		keys = append(keys, publicJWK(kid, k.Public()))
	}
	b, _ := json.Marshal(map[string]interface{}{"keys": keys})
	return b
}

func publicJWK(kid string, pub crypto.PublicKey) map[string]string {
	enc := base64.RawURLEncoding.EncodeToString
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		crv, alg := p.Curve.Params().Name, map[int]string{32: "ES256", 48: "ES384", 66: "ES512"}[size]
		point, err := p.Bytes() // 0x04, then x and y, each of size bytes
		if err != nil {
			panic(fmt.Sprintf("plugintest: an EC key of this issuer has no uncompressed form: %v", err))
		}
		return map[string]string{"kty": "EC", "crv": crv, "kid": kid, "alg": alg, "use": "sig",
			"x": enc(point[1 : 1+size]), "y": enc(point[1+size:])}
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
			"n": enc(p.N.Bytes()), "e": enc(big.NewInt(int64(p.E)).Bytes())}
	}
	panic("unknown key type")
}

// Claims returns the claims of a good token for resource.
func (ti *Issuer) Claims(resource string) jwt.MapClaims {
	now := time.Now().Unix()
	return jwt.MapClaims{
		"iss": ti.URL, "sub": "1234567", "aud": resource, "client_id": "client-abc", "scope": "mcp",
		"iat": now, "nbf": now, "exp": now + 3600, "jti": randomJTI(), "username": "octocat", "name": "The Octocat",
		"email": "octocat@example.com",
	}
}

// Token signs claims with the key kid, with the RFC 9068 header; mutate may change the header first.
func (ti *Issuer) Token(kid string, claims jwt.MapClaims, mutate ...func(*jwt.Token)) (string, error) {
	k := ti.key(kid)
	if k == nil {
		return "", fmt.Errorf("issuer: no key %q", kid)
	}
	var m jwt.SigningMethod = jwt.SigningMethodES256
	if _, ok := k.(*rsa.PrivateKey); ok {
		m = jwt.SigningMethodRS256
	}
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = kid
	for _, f := range mutate {
		f(tok)
	}
	s, err := tok.SignedString(k)
	if err != nil {
		return "", fmt.Errorf("issuer: sign with %q: %w", kid, err)
	}
	return s, nil
}

// Sign is Token for tests, which sign with the keys they added: it panics where Token fails, on a test's mistake
// (an unknown kid).
func (ti *Issuer) Sign(kid string, claims jwt.MapClaims, mutate ...func(*jwt.Token)) string {
	s, err := ti.Token(kid, claims, mutate...)
	if err != nil {
		panic(err)
	}
	return s
}

// JWKSFetches counts the requests to the JWKS endpoint so far.
func (ti *Issuer) JWKSFetches() int64 { return atomic.LoadInt64(&ti.jwks) }

func randomJTI() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func rsaKey(t testing.TB) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return k
}

// Backend is the next handler: it answers 200 "backend" and records what reached it.
type Backend struct {
	mu    sync.Mutex
	calls int
	last  http.Header
}

func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.calls++
	b.last = r.Header.Clone()
	b.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("backend"))
}

// Seen returns the number of requests and the headers of the last one.
func (b *Backend) Seen() (int, http.Header) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls, b.last
}
