package oauth_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
)

const exchangeAudience = "https://api.example.com"

// RFC 8693 token exchange: a backend the operator names exchanges a user's access token for a token of another
// audience, bounded by the subject's grant (scope, expiry, revocation); every other case is refused with its error.
func TestTokenExchange(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, "octo")
			confidential := func(name string) (string, string) {
				status, c := e.register(map[string]any{"client_name": name, "redirect_uris": []string{redirectURI},
					"token_endpoint_auth_method": "client_secret_basic"})
				require.Equal(t, http.StatusCreated, status, c)
				return c["client_id"].(string), c["client_secret"].(string)
			}
			backend, backendSecret := confidential("Backend")
			other, otherSecret := confidential("Other")
			policy, err := oauth.ParseExchangePolicy(exchangeAudience + "=" + backend)
			require.NoError(t, err)
			e.tweak = func(cfg *oauth.Config) { cfg.Exchange = policy }
			e.start("octo")

			public, tok := e.login()
			subject := tok["access_token"].(string)
			_, subjectClaims := jtiOf(t, subject)
			form := func(extra ...string) url.Values {
				f := url.Values{"grant_type": {oauth.TokenExchangeGrantType}, "subject_token": {subject},
					"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "audience": {exchangeAudience}}
				for i := 0; i+1 < len(extra); i += 2 {
					f.Set(extra[i], extra[i+1])
				}
				return f
			}

			status, out, _ := e.tokenRequest(form(), backend, backendSecret)
			require.Equal(t, http.StatusOK, status, out)
			assert.Equal(t, "urn:ietf:params:oauth:token-type:access_token", out["issued_token_type"])
			assert.Equal(t, "mcp", out["scope"])
			_, claims := jtiOf(t, out["access_token"].(string))
			assert.Equal(t, exchangeAudience, claims["aud"], "the token names the audience")
			assert.Equal(t, subjectClaims["sub"], claims["sub"], "and carries the user")
			assert.Equal(t, backend, claims["client_id"])
			assert.LessOrEqual(t, claims["exp"].(float64), subjectClaims["exp"].(float64), "no later than the subject")

			for name, c := range map[string]struct {
				form           url.Values
				client, secret string
				want           string
			}{
				"a client the policy does not name": {form(), other, otherSecret, "unauthorized_client"},
				"a public client":                   {form("client_id", public), "", "", "unauthorized_client"},
				"an audience not listed":            {form("audience", "https://elsewhere.example.com"), backend, backendSecret, "invalid_target"},
				"a wider scope than the subject's":  {form("scope", "mcp admin"), backend, backendSecret, "invalid_scope"},
				"a subject that is no token":        {form("subject_token", "not-a-token"), backend, backendSecret, "invalid_grant"},
				"an actor token":                    {form("actor_token", subject), backend, backendSecret, "invalid_request"},
			} {
				status, out, _ := e.tokenRequest(c.form, c.client, c.secret)
				assert.Equal(t, http.StatusBadRequest, status, name)
				assert.Equal(t, c.want, out["error"], "%s: %v", name, out)
			}

			// Revoking the subject's grant revokes the exchanged token, and the subject exchanges no more.
			resp, err := e.http.PostForm(e.issuer+"/revoke", url.Values{"token": {tok["refresh_token"].(string)}, "client_id": {public}})
			require.NoError(t, err)
			resp.Body.Close()
			assert.True(t, e.revoked(claims["jti"].(string)), "the exchanged token is on the revocation feed")
			status, out, _ = e.tokenRequest(form(), backend, backendSecret)
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_grant", out["error"])
		})
	}
}

func TestExchangePolicySettings(t *testing.T) {
	p, err := oauth.ParseExchangePolicy("https://a.example.com=one two; https://b.example.com=*\n")
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{"https://a.example.com": {"one", "two"}, "https://b.example.com": {"*"}}, p)
	for _, bad := range []string{"a.example.com=one", "https://a.example.com=", "https://a.example.com", "https://a.example.com=x;https://a.example.com=y"} {
		_, err := oauth.ParseExchangePolicy(bad)
		assert.Error(t, err, bad)
	}
}
