package oauth_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
	webbrowser "github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
)

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

func (e *env) deviceClient() string {
	status, c := e.register(map[string]any{"client_name": "Headless script", "token_endpoint_auth_method": "none",
		"grant_types": []string{oauth.DeviceGrantType, "refresh_token"}})
	require.Equal(e.t, http.StatusCreated, status, c)
	return c["client_id"].(string)
}

func (e *env) deviceAuthorize(form url.Values) (int, map[string]any) {
	resp, err := e.http.PostForm(e.issuer+"/device_authorization", form)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(e.t, jsonDecode(resp.Body, &out))
	return resp.StatusCode, out
}

// approveDevice plays the user (internal/browser): opens the verification URI, confirms the code, logs in at GitHub
// and answers the consent page with action. It returns the last page's status and text.
func (e *env) approveDevice(verificationURIComplete, action string) (int, string) {
	e.t.Helper()
	b := webbrowser.New(nil)
	b.Action = action
	res, err := b.Run(context.Background(), verificationURIComplete)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, res.Visits[0].Status)
	if res.Consent != "" {
		assert.Contains(e.t, res.Consent, res.UserCode, "the consent page names the device's code")
	}
	return res.Status, res.Page
}

func devicePoll(client, deviceCode string) url.Values {
	return url.Values{"grant_type": {oauth.DeviceGrantType}, "client_id": {client}, "device_code": {deviceCode}}
}

func TestDeviceFlow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testDeviceFlow(t, newEnv(t, b, "octo")) })
	}
}

func testDeviceFlow(t *testing.T, e *env) {
	client := e.deviceClient()
	status, da := e.deviceAuthorize(url.Values{"client_id": {client}, "scope": {"mcp"}, "resource": {resource}})
	require.Equal(t, http.StatusOK, status, da)
	assert.Regexp(t, `^[B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}$`, da["user_code"])
	assert.Equal(t, e.issuer+"/device", da["verification_uri"])
	assert.Equal(t, e.issuer+"/device?user_code="+da["user_code"].(string), da["verification_uri_complete"])
	assert.Equal(t, 600.0, da["expires_in"])
	assert.Equal(t, 5.0, da["interval"])
	deviceCode := da["device_code"].(string)

	// Before the user acts: pending; polling again at once: slow down.
	st, out, _ := e.tokenRequest(devicePoll(client, deviceCode), "", "")
	assert.Equal(t, http.StatusBadRequest, st)
	assert.Equal(t, "authorization_pending", out["error"])
	_, out, _ = e.tokenRequest(devicePoll(client, deviceCode), "", "")
	assert.Equal(t, "slow_down", out["error"])

	// Wrong device code, or another client's: refused without touching the grant.
	_, out, _ = e.tokenRequest(devicePoll(client, deviceCode[:9]+"wrong"), "", "")
	assert.Equal(t, "invalid_grant", out["error"])
	other := e.deviceClient()
	_, out, _ = e.tokenRequest(devicePoll(other, deviceCode), "", "")
	assert.Equal(t, "invalid_grant", out["error"])

	// The user approves in a browser; the next poll gets tokens for the resource, once.
	st2, page := e.approveDevice(da["verification_uri_complete"].(string), "approve")
	require.Equal(t, http.StatusOK, st2, page)
	assert.Contains(t, page, "Device approved")
	st, tok, _ := e.tokenRequest(devicePoll(client, deviceCode), "", "")
	require.Equal(t, http.StatusOK, st, tok)
	_, claims := jtiOf(t, tok["access_token"].(string))
	assert.Equal(t, resource, claims["aud"])
	assert.Equal(t, "octo", claims["username"])
	assert.Equal(t, client, claims["client_id"])
	require.NotEmpty(t, tok["refresh_token"])
	_, out, _ = e.tokenRequest(devicePoll(client, deviceCode), "", "")
	assert.Equal(t, "expired_token", out["error"], "a device code is used once")
	st, refreshed, _ := e.tokenRequest(refreshForm(client, tok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusOK, st, refreshed)

	// A denial reaches the device as access_denied.
	_, da = e.deviceAuthorize(url.Values{"client_id": {client}, "resource": {resource}})
	st2, page = e.approveDevice(da["verification_uri_complete"].(string), "deny")
	require.Equal(t, http.StatusOK, st2, page)
	_, out, _ = e.tokenRequest(devicePoll(client, da["device_code"].(string)), "", "")
	assert.Equal(t, "access_denied", out["error"])

	// A user not on the allow list is refused at login and the device learns it.
	_, da = e.deviceAuthorize(url.Values{"client_id": {client}, "resource": {resource}})
	require.NoError(t, e.gh.SetLogin("mallory"))
	st2, page = e.approveDevice(da["verification_uri_complete"].(string), "approve")
	assert.Contains(t, page, "Request denied", "status %d", st2)
	_, out, _ = e.tokenRequest(devicePoll(client, da["device_code"].(string)), "", "")
	assert.Equal(t, "access_denied", out["error"])
	require.NoError(t, e.gh.SetLogin(""))

	// Unknown codes get a clear page; a used code cannot be approved again.
	resp, err := e.http.PostForm(e.issuer+"/device", url.Values{"user_code": {"BCDF-GHJK"}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), "unknown, expired or already used")
	resp, err = e.http.PostForm(e.issuer+"/device", url.Values{"user_code": {"hello"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// Requests the device endpoint refuses.
	st, out = e.deviceAuthorize(url.Values{"client_id": {e.publicClient()}, "resource": {resource}})
	assert.Equal(t, http.StatusBadRequest, st)
	assert.Equal(t, "unauthorized_client", out["error"], "a client without the device grant")
	_, out = e.deviceAuthorize(url.Values{"client_id": {client}, "resource": {"https://elsewhere.example.com/mcp"}})
	assert.Equal(t, "invalid_target", out["error"])
	st, out = e.deviceAuthorize(url.Values{"client_id": {client}, "resource": {resource}, "scope": {"root"}})
	assert.Equal(t, http.StatusOK, st, "an unknown scope is left out of the grant, not refused: %v", out)
	st, out = e.deviceAuthorize(url.Values{"client_id": {"nope"}})
	assert.Equal(t, http.StatusUnauthorized, st)
	assert.Equal(t, "invalid_client", out["error"])

	// The metadata advertises the grant.
	var meta map[string]any
	resp, err = e.http.Get(e.issuer + "/.well-known/oauth-authorization-server")
	require.NoError(t, err)
	require.NoError(t, jsonDecode(resp.Body, &meta))
	resp.Body.Close()
	assert.Equal(t, e.issuer+"/device_authorization", meta["device_authorization_endpoint"])
	assert.Contains(t, meta["grant_types_supported"], oauth.DeviceGrantType)
}
