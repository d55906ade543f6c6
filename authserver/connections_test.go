package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
)

func connectionsKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// The settings of connected accounts that cannot work stop the start, naming the flag; so does a key that does not
// open the stored connections, rather than the server handing out garbage.
func TestConnectionSettingsRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "s.jsonl")
	st, err := embedded.Open(data, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	// A connection sealed under key "k1", by a key other than the one given below.
	require.NoError(t, st.PutConnection(context.Background(), &store.Connection{UserID: "1001", Upstream: "gitlab", KeyID: "k1",
		Sealed: []byte("0123456789abcdefghijklmnopqrstuvwxyz"), CreatedAt: time.Now()}))
	require.NoError(t, st.Close())

	base := []string{"--issuer", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--data-file", data,
		"--github-client-id", "id", "--github-client-secret", "secret", "--allowed-github-users", "octo"}
	gitlab := []string{"--upstreams", "gitlab", "--upstream-gitlab-client-id", "gw", "--upstream-gitlab-issuer", "https://gitlab.example.com"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--upstreams", "Git Lab"}, "--upstreams: upstream name"},
		{gitlab, "--upstreams: connected accounts' tokens are stored encrypted: give --connections-key"},
		{append(gitlab, "--connections-key", "k1:short"), "--connections-key: key \"k1\": want the base64 of exactly 32 random bytes"},
		{[]string{"--upstreams", "gitlab", "--upstream-gitlab-client-id", "gw", "--connections-key", "k1:" + connectionsKey()},
			"upstream gitlab: give either its issuer"},
		{append(gitlab, "--connections-key", "k1:"+connectionsKey(), "--broker-secret", "0123456789012345678901234567890123"),
			"--broker-secret: the broker endpoint is served on the internal listener only: set --feed-listen"},
		{append(gitlab, "--connections-key", "k1:"+connectionsKey()), "does not open under its key"},
		{append(gitlab, "--connections-key", "k2:"+connectionsKey()), `sealed under key "k1", which the configured keys do not include`},
	} {
		err := run(append(append([]string{}, base...), c.args...), io.Discard, io.Discard)
		assert.ErrorContains(t, err, c.want, c.args)
	}
}

// An upstream named like an OpenID provider, with no app of its own, is that provider's login app: its scopes are
// asked for at login, and the login's token is the user's connection (refreshed and revoked through the
// provider's discovery document).
func TestOpenIDLoginAppAsUpstream(t *testing.T) {
	args := []string{"--issuer", "http://127.0.0.1:1", "--oidc-providers", "corp,other",
		"--oidc-corp-issuer", "https://idp.example.com", "--oidc-corp-client-id", "gw", "--oidc-corp-client-secret", "s3",
		"--oidc-corp-display-name", "Corp SSO", "--oidc-other-issuer", "https://other.example.com",
		"--upstreams", "corp,gitlab", "--upstream-corp-scopes", "offline_access,api",
		"--upstream-gitlab-issuer", "https://gitlab.example.com", "--upstream-gitlab-client-id", "gl",
		"--connections-key", "k1:" + connectionsKey()}
	var s settings
	fs := flags(&s)
	names, err := oidcProviderNames(args)
	require.NoError(t, err)
	addOIDCFlags(fs, &s, names)
	ups, err := upstreamNames(args)
	require.NoError(t, err)
	addUpstreamFlags(fs, &s, ups)
	require.NoError(t, fs.Parse(args))

	assert.Equal(t, []string{"offline_access", "api"}, loginScopes(&s, "corp"))
	assert.Empty(t, loginScopes(&s, "other"), "a provider whose app is not an upstream asks for nothing more")

	st, err := embedded.Open(filepath.Join(t.TempDir(), "s.jsonl"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	defer st.Close()
	conns, err := connectionsService(context.Background(), &s, st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	corp, ok := conns.Upstream("corp")
	require.True(t, ok)
	assert.True(t, corp.FromLogin)
	assert.Equal(t, "https://idp.example.com", corp.Issuer)
	assert.Equal(t, "gw", corp.ClientID)
	assert.Equal(t, "s3", corp.ClientSecret)
	assert.Equal(t, "Corp SSO", corp.DisplayName)
	gitlab, _ := conns.Upstream("gitlab")
	assert.False(t, gitlab.FromLogin, "an upstream with an app of its own is connected by its own flow")
}
