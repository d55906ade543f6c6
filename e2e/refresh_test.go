package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// raceResult is what the TypeScript SDK client reports with REFRESH_RACE: the refresh token its copies held, and for
// each copy (two at once, one a second later) the tokens its own refresh got and the tool result it got with them.
type raceResult struct {
	Presented     string   `json:"presented"`
	RefreshTokens []string `json:"refreshTokens"`
	AccessTokens  []string `json:"accessTokens"`
	Results       []struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"results"`
}

// A client that refreshes one token from two places at once, and again a second later (Claude.ai's egress nodes,
// Codex's processes, a retry), stays connected: every refresh gets the same successor, through Traefik and the
// plugin, and its access token calls a tool. Using the successor closes the window: the old token is then a
// replay that revokes the grant.
func TestRefreshRaceStaysConnected(t *testing.T) {
	s := startStack(t, "path")
	everything := s.URLs["everything"]
	run := runClientWith(t, []string{"REFRESH_RACE=1"}, everything)
	race := run.Race
	require.Len(t, race.RefreshTokens, 3, "%+v", race)
	r1, r2 := race.Presented, race.RefreshTokens[0]
	require.NotEmpty(t, r1)
	assert.NotEqual(t, r1, r2, "the token rotated")
	for i := range race.RefreshTokens {
		assert.Equal(t, r2, race.RefreshTokens[i], "copy %d got the one successor", i)
		assert.Equal(t, race.AccessTokens[0], race.AccessTokens[i], "and the access token issued with it")
		require.NotEmpty(t, race.Results[i].Content, "copy %d called the tool", i)
		assert.Equal(t, "Echo: hello through the gateway", race.Results[i].Content[0].Text)
	}
	as := scrapeMetrics(t, s.Metrics["authserver"])
	assert.Equal(t, 2.0, as.value("authserver_refresh_grace_reuses_total"), "%s", as)
	assert.Zero(t, as.value("authserver_revocations_total", "reason", "refresh_replayed"))

	// The successor is used; the old token is now a replay, and the whole grant goes.
	status, tok := refresh(t, s.Issuer, run.ClientID, r2)
	require.Equal(t, http.StatusOK, status, tok)
	status, body := refresh(t, s.Issuer, run.ClientID, r1)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", body["error"])
	r3, _ := tok["refresh_token"].(string)
	status, _ = refresh(t, s.Issuer, run.ClientID, r3)
	assert.Equal(t, http.StatusBadRequest, status, "the replay revoked the successor's successor")
	as = scrapeMetrics(t, s.Metrics["authserver"])
	assert.Equal(t, 1.0, as.value("authserver_revocations_total", "reason", "refresh_replayed"))

	logs := s.logs.String()
	assert.Contains(t, logs, "refresh token replayed; revoking its grant")
	assert.Contains(t, logs, "refresh token presented again within the reuse window")
	for name, secret := range map[string]string{"R1": r1, "R2": r2, "R3": r3, "access token": race.AccessTokens[0]} {
		assert.NotContains(t, logs, secret, "the log holds the %s", name)
	}
}

// refresh posts a refresh_token grant to the authorization server and returns the status and the JSON body.
func refresh(t *testing.T, issuer, clientID, rt string) (int, map[string]any) {
	t.Helper()
	r, err := http.PostForm(issuer+"/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID},
		"refresh_token": {rt}})
	require.NoError(t, err)
	defer r.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
	return r.StatusCode, body
}
