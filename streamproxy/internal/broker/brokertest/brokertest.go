// Package brokertest is a stand-in of the authserver's broker endpoint that speaks its contract
// (docs/connections.md), for streamproxy's tests: POST /connections/token with the shared secret answers a
// connected user's token, not_connected with a connect URL, unknown_upstream or invalid_client.
package brokertest

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// Broker is the stand-in. Tokens are set per user and upstream with Connect and withdrawn with Disconnect.
type Broker struct {
	URL       string
	Secret    string
	Upstreams []string

	mu     sync.Mutex
	tokens map[[2]string]token
	asked  map[[2]string]int
}

type token struct {
	access  string
	expires time.Time
}

// New starts a stand-in that knows the upstreams, with its secret.
func New(t testing.TB, secret string, upstreams ...string) *Broker {
	b := &Broker{Secret: secret, Upstreams: upstreams, tokens: map[[2]string]token{}, asked: map[[2]string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(srv.Close)
	b.URL = srv.URL
	return b
}

// Connect gives the user a token for the upstream, expiring at expires (zero: unknown).
func (b *Broker) Connect(user, upstream, access string, expires time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens[[2]string{user, upstream}] = token{access, expires}
}

// Disconnect withdraws the user's connection to the upstream.
func (b *Broker) Disconnect(user, upstream string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.tokens, [2]string{user, upstream})
}

// Asked reports how often the user's token for the upstream was asked for.
func (b *Broker) Asked(user, upstream string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.asked[[2]string{user, upstream}]
}

// ConnectURL is the connect page the stand-in names for a user and upstream.
func ConnectURL(user, upstream string) string {
	return "https://auth.example.test/connect/" + upstream + "?for=" + url.QueryEscape(user)
}

func (b *Broker) serve(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, body map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/connections/token" {
		http.NotFound(w, r)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+b.Secret)) != 1 {
		answer(http.StatusUnauthorized, map[string]any{"error": "invalid_client"})
		return
	}
	var q struct{ User, Upstream string }
	if json.NewDecoder(r.Body).Decode(&q) != nil || q.User == "" {
		answer(http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	if !slices.Contains(b.Upstreams, q.Upstream) {
		answer(http.StatusBadRequest, map[string]any{"error": "unknown_upstream", "upstream": q.Upstream})
		return
	}
	b.mu.Lock()
	b.asked[[2]string{q.User, q.Upstream}]++
	tok, ok := b.tokens[[2]string{q.User, q.Upstream}]
	b.mu.Unlock()
	if !ok {
		answer(http.StatusNotFound, map[string]any{"error": "not_connected", "upstream": q.Upstream,
			"display_name": "The " + q.Upstream, "connect_url": ConnectURL(q.User, q.Upstream)})
		return
	}
	var exp int64
	if !tok.expires.IsZero() {
		exp = tok.expires.Unix()
	}
	answer(http.StatusOK, map[string]any{"access_token": tok.access, "token_type": "Bearer", "expires_at": exp})
}
