package oauth_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
)

// Opening the account page without a session starts a login, which stores a request until it expires; anyone may
// do it, so it counts against the per-address limit of authorization requests.
func TestAccountLoginsAreRateLimited(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	e.tweak = func(c *oauth.Config) { c.AuthorizePerMinute = 10 }
	e.start("octo")
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := range 10 {
		resp, err := noRedirects.Get(e.issuer + "/account")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusFound, resp.StatusCode, "request %d goes to the login", i+1)
	}
	resp, err := noRedirects.Get(e.issuer + "/account")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "60", resp.Header.Get("Retry-After"))
}
