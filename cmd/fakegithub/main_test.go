package main

import (
	"context"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

func TestRefusesNonLoopbackListen(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/fakegithub")
	for _, addr := range []string{"0.0.0.0:" + strconv.Itoa(testenv.FreePort(t)), ":9099", "[::]:9099"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, "-listen", addr).CombinedOutput()
		cancel()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "fakegithub -listen %s must exit with an error; output:\n%s", addr, out)
		assert.Equal(t, 1, exit.ExitCode())
		assert.Contains(t, string(out), "refusing to listen on")
		assert.Contains(t, string(out), "loopback")
	}

	// The environment variable is checked the same way.
	cmd := exec.Command(bin)
	cmd.Env = testenv.Env("FAKEGITHUB_LISTEN=0.0.0.0:9099")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "refusing to listen on")
}

func TestServesOnLoopbackAndWarns(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/fakegithub")
	port := testenv.FreePort(t)
	p := testenv.Start(t, "fakegithub", exec.Command(bin, "-listen", "127.0.0.1:"+strconv.Itoa(port),
		"-login", "someone", "-client-id", "cid", "-client-secret", "csecret", "-callback-url", "http://127.0.0.1/callback"))
	p.WaitLine(t, "fake GitHub listening", 30*time.Second)
	assert.Contains(t, p.Output(), "DEVELOPMENT FAKE OF GITHUB")
	assert.Contains(t, p.Output(), `"someone" WITHOUT A PASSWORD`)

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(testenv.URL(port, "/login/oauth/authorize?client_id=cid&state=s&redirect_uri="+
		url.QueryEscape("http://127.0.0.1:4000/callback")))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:4000", loc.Host)
	assert.NotEmpty(t, loc.Query().Get("code"))

	resp, err = http.Get(testenv.URL(port, "/login/oauth/authorize?client_id=other"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestParseFlags(t *testing.T) {
	t.Setenv("FAKEGITHUB_LOGIN", "from-env")
	t.Setenv("FAKEGITHUB_CLIENT_ID", "env-id")
	o, err := parseFlags([]string{"-client-id", "flag-id"}, nil)
	require.NoError(t, err)
	assert.Equal(t, "from-env", o.login)
	assert.Equal(t, "flag-id", o.clientID, "a flag wins over the environment")
	assert.Equal(t, "127.0.0.1:9099", o.listen)

	cfg := o.config(nil)
	require.Len(t, cfg.Users, 1)
	assert.Equal(t, []string{"dev-org"}, cfg.Users[0].Orgs)
	assert.Equal(t, []string{"dev-org/dev-team"}, cfg.Users[0].Teams)
	assert.True(t, cfg.Users[0].Emails[0].Primary && cfg.Users[0].Emails[0].Verified)

	t.Setenv("FAKEGITHUB_USER_ID", "not-a-number")
	_, err = parseFlags(nil, nil)
	assert.ErrorContains(t, err, "FAKEGITHUB_USER_ID")
}
