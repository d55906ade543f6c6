package main

import (
	"io"
	"net/http"
	"net/http/httptest"
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

	// With the secret from the environment too, the settings are complete and the provider is asked for its
	// discovery document, whose other issuer stops the start (a provider that cannot be reached would not).
	t.Setenv("AUTHSERVER_OIDC_CORP_SSO_CLIENT_SECRET", "from-env")
	idpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"issuer":"https://other.example"}`)
	}))
	defer idpSrv.Close()
	err = run([]string{"--issuer", "http://127.0.0.1:1", "--data-file", t.TempDir() + "/s.jsonl", "--oidc-providers", "corp-sso",
		"--oidc-corp-sso-issuer", idpSrv.URL}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "oidc provider corp-sso: the provider's discovery document names the issuer \"https://other.example\"",
		"the client id and secret came from the environment")

	err = run([]string{"--issuer", "http://127.0.0.1:1", "--data-file", t.TempDir() + "/s.jsonl"}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "no identity provider: configure a GitHub OAuth app")

	err = run([]string{"--issuer", "http://127.0.0.1:1", "--oidc-providers", "corp", "--oidc-corp-issuer", "https://idp.example.com",
		"--oidc-corp-client-id", "id", "--oidc-corp-client-secret", "s", "--oidc-corp-allowed-emails", "not-an-address"}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "OpenID provider corp: allowed emails: \"not-an-address\" is not an e-mail address")

	err = run([]string{"--issuer", "http://127.0.0.1:1", "--oidc-other-issuer", "x"}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "flag provided but not defined: -oidc-other-issuer", "a provider's flags exist only when it is listed")
}
