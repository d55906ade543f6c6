package main

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The OpenID providers are named before the flags are parsed (their flags are named after them): on the command
// line in either form, else in the environment; bad names stop the start.
func TestOIDCProviderNames(t *testing.T) {
	t.Setenv("AUTHSERVER_OIDC_PROVIDERS", "env-one")
	for args, want := range map[string][]string{
		"--oidc-providers=google,okta": {"google", "okta"},
		"-oidc-providers Google":       {"google"},
		"--listen :1":                  {"env-one"},
	} {
		got, err := oidcProviderNames(splitArgs(args))
		require.NoError(t, err, args)
		assert.Equal(t, want, got, args)
	}
	for _, bad := range []string{"--oidc-providers=github", "--oidc-providers=a,a", "--oidc-providers=my_idp", "--oidc-providers=1x"} {
		_, err := oidcProviderNames(splitArgs(bad))
		assert.Error(t, err, bad)
	}
}

func splitArgs(s string) []string { return strings.Fields(s) }

// Each provider's settings come from its flags or AUTHSERVER_OIDC_<NAME>_*; what is missing is named.
func TestOIDCSettings(t *testing.T) {
	t.Setenv("AUTHSERVER_OIDC_PROVIDERS", "")
	t.Setenv("AUTHSERVER_OIDC_CORP_SSO_CLIENT_ID", "from-env")
	err := run([]string{"--issuer", "http://127.0.0.1:1", "--data-file", t.TempDir() + "/s.jsonl", "--oidc-providers", "corp-sso",
		"--oidc-corp-sso-issuer", "https://idp.example.com"}, io.Discard, io.Discard)
	assert.EqualError(t, err, "OpenID provider corp-sso: --oidc-corp-sso-issuer, --oidc-corp-sso-client-id and "+
		"--oidc-corp-sso-client-secret are required (see docs/idp.md)")

	t.Setenv("AUTHSERVER_OIDC_CORP_SSO_CLIENT_SECRET", "from-env")
	err = run([]string{"--issuer", "http://127.0.0.1:1", "--data-file", t.TempDir() + "/s.jsonl", "--oidc-providers", "corp-sso",
		"--oidc-corp-sso-issuer", "http://127.0.0.1:1"}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "oidc provider corp-sso: discovery at http://127.0.0.1:1/.well-known/openid-configuration failed",
		"the client id and secret came from the environment")

	err = run([]string{"--issuer", "http://127.0.0.1:1", "--data-file", t.TempDir() + "/s.jsonl"}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "no identity provider: configure a GitHub OAuth app")

	err = run([]string{"--issuer", "http://127.0.0.1:1", "--oidc-providers", "corp", "--oidc-corp-issuer", "https://idp.example.com",
		"--oidc-corp-client-id", "id", "--oidc-corp-client-secret", "s", "--oidc-corp-allowed-emails", "not-an-address"}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "OpenID provider corp: allowed emails: \"not-an-address\" is not an e-mail address")

	err = run([]string{"--issuer", "http://127.0.0.1:1", "--oidc-other-issuer", "x"}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "flag provided but not defined: -oidc-other-issuer", "a provider's flags exist only when it is listed")
}
