package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/devstack"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

var verificationURL = regexp.MustCompile(`https?://\S+/device\?user_code=\S+`)

// A script gets a token for one MCP server by the device flow, with the user approving in a browser elsewhere, and
// uses it through the gateway; the file holding it is readable by its owner only.
func TestTokenCommand(t *testing.T) {
	s := startStack(t, "path")
	bin := testenv.BuildBinary(t, "./cmd/mcp-token")
	file := filepath.Join(t.TempDir(), "tokens", "everything.json")
	everything := s.URLs["everything"]

	tokenGet(t, bin, everything, file, "")

	info, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the token file is readable by its owner only")
	var saved struct {
		Resource     string `json:"resource"`
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	b, _ := os.ReadFile(file)
	require.NoError(t, json.Unmarshal(b, &saved))
	assert.Equal(t, everything, saved.Resource)
	assert.Equal(t, http.StatusOK, mcpRequest(t, everything, saved.AccessToken).StatusCode, "the token works through the gateway")
	assert.Equal(t, http.StatusUnauthorized, mcpRequest(t, s.URLs["diagnostic"], saved.AccessToken).StatusCode,
		"and only for the MCP server it was asked for")

	out, err := exec.Command(bin, "print", "--file", file).Output()
	require.NoError(t, err)
	assert.Equal(t, saved.AccessToken, strings.TrimSpace(string(out)))
	require.NoError(t, exec.Command(bin, "refresh", "--file", file).Run())
	b, _ = os.ReadFile(file)
	var rotated struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	require.NoError(t, json.Unmarshal(b, &rotated))
	assert.NotEqual(t, saved.RefreshToken, rotated.RefreshToken, "refresh tokens rotate")
	assert.Equal(t, http.StatusOK, mcpRequest(t, everything, rotated.AccessToken).StatusCode)

	as := scrapeMetrics(t, s.Metrics["authserver"])
	assert.Equal(t, 1.0, as.value("authserver_tokens_issued_total", "grant_type", "device_code"))
	assert.NotContains(t, s.logs.String(), saved.AccessToken)
	assert.NotContains(t, s.logs.String(), saved.RefreshToken)
	assert.NotContains(t, s.logs.String(), "user_code=", "the device page's query stays out of the access log")
}

// approveInBrowser plays the user of a device (internal/browser): opens the link, confirms the code, picks provider
// on the sign-in page ("": there is none), logs in (the fake GitHub lets dev-user in, Hydra's login app the
// configured user) and approves the consent page.
func approveInBrowser(t *testing.T, link, provider string) {
	t.Helper()
	b := browser.New(devstack.Client())
	b.Choose, b.Action = provider, "approve"
	res, err := b.Run(context.Background(), link)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Visits[0].Status)
	require.NotEmpty(t, res.Consent, "consent page expected: HTTP %d %s", res.Status, res.Page)
	if provider != "" {
		assert.Contains(t, res.Consent, "as "+provider+" user")
	}
	require.Contains(t, res.Page, "Device approved")
}

// tokenGet runs `mcp-token get` for an MCP URL and approves its device code in the browser, at the named identity
// provider when the login shows a chooser ("" when it does not); it returns once mcp-token has its token.
func tokenGet(t *testing.T, bin, mcpURL, file, provider string) {
	t.Helper()
	get := exec.Command(bin, "get", mcpURL, "--file", file)
	stderr, err := get.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, get.Start())
	t.Cleanup(func() { _ = get.Process.Kill() })
	lines := bufio.NewScanner(stderr)
	var link string
	for link == "" && lines.Scan() {
		link = verificationURL.FindString(lines.Text())
	}
	require.NotEmpty(t, link, "mcp-token printed no verification URL")
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	approveInBrowser(t, link, provider)
	done := make(chan error, 1)
	go func() { done <- get.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("mcp-token did not finish after the approval")
	}
}
