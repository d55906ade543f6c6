package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/grant"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// A grant ends at its maximum age, counted from the login, however often it refreshes, so that a login's checks are
// made again; tokens issued near the end do not outlive it.
func TestGrantMaxAge(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, "octo")
			e.tweak = func(c *oauth.Config) { c.Grants = grant.Policy{MaxAge: 3 * time.Second} }
			e.start("octo")
			client := e.publicClient()
			p := newPKCE()
			login := time.Now()
			status, tok, _ := e.tokenRequest(exchange(client, e.code(client, p), p), "", "")
			require.Equal(t, http.StatusOK, status, tok)
			_, claims := jtiOf(t, tok["access_token"].(string))
			assert.LessOrEqual(t, int64(claims["exp"].(float64)), login.Add(4*time.Second).Unix(),
				"the access token ends with the grant, not an hour later")
			assert.LessOrEqual(t, tok["expires_in"].(float64), 3.0)

			// A refresh before the end works and does not extend the grant.
			time.Sleep(time.Second)
			status, tok, _ = e.tokenRequest(refreshForm(client, tok["refresh_token"].(string)), "", "")
			require.Equal(t, http.StatusOK, status, tok)
			rt, err := e.store.GetRefresh(context.Background(), store.HashSecret(tok["refresh_token"].(string)))
			require.NoError(t, err)
			assert.WithinDuration(t, login.Add(3*time.Second), rt.GrantExpiresAt, time.Second, "the rotated token inherits the grant's end")
			assert.False(t, rt.ExpiresAt.After(rt.GrantExpiresAt), "no refresh token outlives its grant")

			time.Sleep(2500 * time.Millisecond)
			status, body, _ := e.tokenRequest(refreshForm(client, tok["refresh_token"].(string)), "", "")
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_grant", body["error"], "after the maximum age the user logs in again")
		})
	}
}

// A grant refreshes only so often, so that it cannot pile up live access tokens (each of which
// revoking the grant publishes to the feed). A refused refresh leaves the refresh token usable.
func TestRefreshRateLimitedPerGrant(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, "octo")
			e.tweak = func(c *oauth.Config) {
				c.Grants = grant.Policy{MaxAge: time.Hour, RefreshLimit: 3, Window: 3 * time.Second}
			}
			e.start("octo")
			client := e.publicClient()
			p := newPKCE()
			status, tok, _ := e.tokenRequest(exchange(client, e.code(client, p), p), "", "")
			require.Equal(t, http.StatusOK, status, tok)
			rt := tok["refresh_token"].(string)
			for i := range 3 {
				status, tok, _ = e.tokenRequest(refreshForm(client, rt), "", "")
				require.Equal(t, http.StatusOK, status, "refresh %d: %v", i+1, tok)
				rt = tok["refresh_token"].(string)
			}
			status, body, hdr := e.tokenRequest(refreshForm(client, rt), "", "")
			require.Equal(t, http.StatusTooManyRequests, status, body)
			assert.Equal(t, "slow_down", body["error"])
			assert.Contains(t, body["error_description"], "still valid")
			wait, err := strconv.Atoi(hdr.Get("Retry-After"))
			require.NoError(t, err)
			assert.Positive(t, wait)

			// Another grant of the same client and user is not affected.
			p2 := newPKCE()
			status, other, _ := e.tokenRequest(exchange(client, e.code(client, p2), p2), "", "")
			require.Equal(t, http.StatusOK, status)
			status, _, _ = e.tokenRequest(refreshForm(client, other["refresh_token"].(string)), "", "")
			assert.Equal(t, http.StatusOK, status)

			time.Sleep(time.Duration(wait)*time.Second + 100*time.Millisecond)
			status, tok, _ = e.tokenRequest(refreshForm(client, rt), "", "")
			assert.Equal(t, http.StatusOK, status, "the refused refresh token was not consumed: %v", tok)
		})
	}
}

// The feed answers in bounded pages that a reader follows, so that no answer grows with the number of tokens revoked.
func TestRevocationFeedPages(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, "octo")
			ctx := context.Background()
			n := oauth.FeedPageSize + 500
			exp := time.Now().Add(time.Hour)
			for i := range n {
				require.NoError(t, e.store.RevokeAccess(ctx, "jti-"+strconv.Itoa(i), exp))
			}
			type page struct {
				Cursor  int64 `json:"cursor"`
				More    bool  `json:"more"`
				Revoked []struct {
					JTI string `json:"jti"`
				} `json:"revoked"`
			}
			read := func(since int64) page {
				resp, err := e.http.Get(e.issuer + "/revocations?since=" + strconv.FormatInt(since, 10))
				require.NoError(t, err)
				defer resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				var p page
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
				return p
			}
			first := read(0)
			assert.Len(t, first.Revoked, oauth.FeedPageSize, "one answer holds one page")
			assert.True(t, first.More)
			second := read(first.Cursor)
			assert.Len(t, second.Revoked, 500)
			assert.False(t, second.More)
			assert.Equal(t, "jti-"+strconv.Itoa(n-1), second.Revoked[499].JTI, "the reader reached the end")
			assert.Empty(t, read(second.Cursor).Revoked)
		})
	}
}

// With SeparateFeed the public handler neither serves nor advertises the feed (it is for the gateway's plugins,
// and its pages cost the store a read each); FeedHandler, on an internal listener, does.
func TestSeparateFeedIsNotPublic(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	e.tweak = func(c *oauth.Config) { c.SeparateFeed = true }
	e.start("octo")
	require.NoError(t, e.store.RevokeAccess(context.Background(), "some-jti", time.Now().Add(time.Hour)))

	resp, err := e.http.Get(e.issuer + "/revocations?since=0")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the public listener has no feed")
	resp, err = e.http.Get(e.issuer + "/.well-known/oauth-authorization-server")
	require.NoError(t, err)
	var md map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&md))
	resp.Body.Close()
	assert.NotContains(t, md, "revocation_feed_endpoint")

	internal := httptest.NewServer(e.srv.FeedHandler())
	defer internal.Close()
	resp, err = e.http.Get(internal.URL + "/revocations?since=0")
	require.NoError(t, err)
	var feed struct{ Revoked []map[string]any }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&feed))
	resp.Body.Close()
	assert.Len(t, feed.Revoked, 1)
	resp, err = e.http.Get(internal.URL + "/authorize")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the internal listener serves the feed only")
}

// On the one-origin layout the root protected-resource metadata path reaches the authorization
// server, which must answer 404 (no single MCP server owns the origin), not 405 with Allow: OPTIONS.
func TestUnknownPathsAre404(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/", "/nope"} {
		resp, err := e.http.Get(e.issuer + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
	req, _ := http.NewRequest(http.MethodPut, e.issuer+"/token", nil)
	resp, err := e.http.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "a known path with another method is still 405")
	assert.Equal(t, "POST, OPTIONS", resp.Header.Get("Allow"))
}
