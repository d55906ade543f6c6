package affinity

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProof(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := Proof("secret", "1001", now)
	assert.True(t, Verify("secret", "1001", p, now))
	assert.True(t, Verify("secret", "1001", p, now.Add(-proofValidity)), "clocks may differ a little")
	assert.False(t, Verify("secret", "1002", p, now), "bound to its user")
	assert.False(t, Verify("other", "1001", p, now), "made with the secret")
	assert.False(t, Verify("secret", "1001", p, now.Add(proofValidity+time.Second)), "short-lived")
	assert.False(t, Verify("secret", "1001", Proof("secret", "1001", now.Add(time.Hour)), now), "not from the future")
	for _, bad := range []string{"", "x", "1800000000", "1800000000.", "abc." + p[11:], p + "A"} {
		assert.False(t, Verify("secret", "1001", bad, now), "%q", bad)
	}
}

// A request marked as forwarded is served only with a valid proof, by a replica with peers or without.
func TestForwardedMarkNeedsProof(t *testing.T) {
	served := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for name, cfg := range map[string]Config{
		"one replica":      {UserHeader: "X-User-Id", Secret: "secret"},
		"no secret at all": {UserHeader: "X-User-Id"},
		"several replicas": {Peers: []string{"http://a:1", "http://b:1"}, Self: "http://a:1", UserHeader: "X-User-Id", Secret: "secret"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Log = slog.New(slog.DiscardHandler)
			h, err := Handler(served, cfg)
			require.NoError(t, err)
			status := func(marks ...string) int {
				r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
				r.Header.Set("X-User-Id", "1001")
				for _, m := range marks {
					r.Header.Add(ForwardedHeader, m)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w.Code
			}
			assert.Equal(t, http.StatusForbidden, status("http://b:1"), "a bare mark, as before")
			assert.Equal(t, http.StatusForbidden, status(Proof("guess", "1001", time.Now())))
			assert.Equal(t, http.StatusForbidden, status(Proof("secret", "1002", time.Now())), "another user's proof")
			valid := Proof("secret", "1001", time.Now())
			assert.Equal(t, http.StatusForbidden, status(valid, valid), "one mark only")
			if cfg.Secret != "" {
				assert.Equal(t, http.StatusTeapot, status(valid), "a replica's hop is served where it lands")
			} else {
				assert.Equal(t, http.StatusForbidden, status(valid), "without a secret nothing can prove a hop")
			}
		})
	}
}

func TestPeersNeedTheSecret(t *testing.T) {
	_, err := Handler(http.NotFoundHandler(), Config{Peers: []string{"http://a:1", "http://b:1"}, Self: "http://a:1", UserHeader: "X-User-Id"})
	require.ErrorContains(t, err, "--peers needs --secret")
}
