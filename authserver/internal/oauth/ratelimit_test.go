package oauth_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
)

// Per-address limits key an IPv6 caller on its /64, since a host or network holds a whole /64 and
// would otherwise take a new limit with each address.
func TestRateLimitsKeyIPv6On64(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	e.tweak = func(c *oauth.Config) {
		c.RegisterPerMinute, c.RegisterBurst = 1, 2
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	e.start("octo")
	register := func(from string) int {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/register", strings.NewReader(
			`{"client_name":"x","redirect_uris":["`+redirectURI+`"],"token_endpoint_auth_method":"none"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", from)
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusCreated, register("2001:db8:1:2::1"))
	assert.Equal(t, http.StatusCreated, register("2001:db8:1:2::2"))
	assert.Equal(t, http.StatusTooManyRequests, register("2001:db8:1:2:ffff::3"), "a third address of the same /64 shares its limit")
	assert.Equal(t, http.StatusCreated, register("2001:db8:1:3::1"), "another /64 has its own")
	assert.Equal(t, http.StatusCreated, register("192.0.2.1"))
	assert.Equal(t, http.StatusCreated, register("192.0.2.2"), "IPv4 addresses are keyed one by one")
}
