package oauth_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// chromium is Debian's Chromium, which `go tool task deps` installs.
const chromium = "/usr/bin/chromium"

// newChromium starts a headless Chromium for the test. The tests run as root on the project's machines, and
// Chromium refuses to run as root inside its sandbox: --no-sandbox is needed there (the pages it opens are the
// test's own).
func newChromium(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		testenv.Missing(t, "Chromium "+chromium, "run `go tool task deps` (it installs Debian's chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")), "start Chromium")
	// The first Run started the browser; a timeout on a context derived from it bounds the test's steps only.
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	return ctx
}

// The account page in a real browser: the user logs in, connects an upstream from the page, sees that connection
// and an application they authorized, disconnects and revokes; the broker then has no token, and the application's
// grant is dead. A form without the session's CSRF token is refused.
func TestAccountPageInBrowser(t *testing.T) {
	ce := newConnectEnv(t, backends[0])
	ctx := newChromium(t)
	bctx := context.Background()
	client, tok := ce.login() // octo authorizes an application (public client "Test client")
	refresh := tok["refresh_token"].(string)
	_, claims := jtiOf(t, tok["access_token"].(string))

	text := func() string {
		body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		require.NoError(t, err)
		return body
	}
	// Log in (the fake GitHub lets octo in by redirects) and land on the page.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(ce.issuer+"/account"), chromedp.WaitVisible(chromedp.ID("grants"))))
	page := text()
	assert.Contains(t, page, "Signed in as octo")
	assert.Contains(t, page, "No account connected")
	assert.Contains(t, page, "Test client", "the application octo authorized")
	assert.Contains(t, page, "mcp")

	// Connect Corp Cloud from the page: through Hydra and back to the page.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-connect="corp"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-upstream="corp"]`))))
	assert.Contains(t, text(), "Corp Cloud")
	status, out := ce.ask(brokerSecret, "1001", "corp")
	require.Equal(t, http.StatusOK, status, out)
	upstreamToken := out["access_token"].(string)

	// A form posted with the user's cookies but without the session's CSRF token changes nothing. (The page's
	// Content-Security-Policy forbids fetch, so the forgery is a form, as another site would post it.)
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const f = document.createElement("form"); f.method = "post"; f.action = "/account";
		for (const [k, v] of Object.entries({action: "disconnect", upstream: "corp", csrf: "guess"})) {
			const i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i);
		}
		document.body.appendChild(f); f.submit(); return true;
	})()`))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitNotPresent(chromedp.ID("grants"))))
	assert.Contains(t, text(), "Session expired")
	_, err = ce.store.GetConnection(bctx, "1001", "corp")
	require.NoError(t, err, "still connected")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(ce.issuer+"/account"), chromedp.WaitVisible(chromedp.CSS(`tr[data-upstream="corp"]`))))

	// Disconnect: the broker has no token any more and offers a link again.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-upstream="corp"] button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`tr[data-upstream="corp"]`))))
	assert.Contains(t, text(), "No account connected")
	status, out = ce.ask(brokerSecret, "1001", "corp")
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, "not_connected", out["error"])

	// Revoke the application: its access token goes to the revocation feed, its refresh token is dead.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-client="`+client+`"] button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`tr[data-client="`+client+`"]`))))
	assert.Contains(t, text(), "No application holds access")
	assert.True(t, ce.revoked(claims["jti"].(string)), "the access token is on the revocation feed")
	status, out, _ = ce.tokenRequest(refreshForm(client, refresh), "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", out["error"])
	grants, err := ce.store.UserGrants(bctx, "1001")
	require.NoError(t, err)
	assert.Empty(t, grants)

	// The audit trail has each change, with the user and never the upstream's token. It is written in the
	// background, in batches: wait for the last change's event.
	require.Eventually(t, func() bool { return len(only(events(t, ce.trail), "grant.revoked", audit.OutcomeSuccess)) > 0 },
		10*time.Second, 10*time.Millisecond, "no grant.revoked event in the trail")
	evs := events(t, ce.trail)
	for _, name := range []string{"connection.created", "connection.deleted"} {
		got := only(evs, name, audit.OutcomeSuccess)
		if assert.Len(t, got, 1, name) {
			assert.Equal(t, "corp", got[0].Upstream)
			assert.Equal(t, "1001", got[0].UserID)
		}
	}
	revoked := only(evs, "grant.revoked", audit.OutcomeSuccess)
	if assert.Len(t, revoked, 1) {
		assert.Equal(t, client, revoked[0].ClientID)
		assert.Equal(t, 1, revoked[0].Count)
	}
	assert.NotContains(t, ce.trail.String(), upstreamToken)
}
