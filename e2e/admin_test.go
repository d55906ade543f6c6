package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/devstack"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The default single-node setup (the embedded store, as `go tool task dev` runs it): the operator commands work
// while the authorization server runs, exactly as the README writes them (the store's file in
// AUTHSERVER_DATA_FILE), through the server's admin socket. Tokens revoked that way are refused at the edge
// (Traefik and the plugin) like any other revocation; a backup is taken live, a restore waits for the server to
// stop; once it has, the commands open the file themselves.
func TestOperatorCommandsWhileServerRuns(t *testing.T) {
	testenv.TraefikBin(t)
	nm := testenv.NodeModules(t)
	logs := &testenv.SyncBuffer{}
	dataDir := t.TempDir()
	s, err := devstack.Start(context.Background(), devstack.Options{
		Root: testenv.RepoRoot(t), Port: testenv.FreePort(t), DataDir: dataDir, Layout: "path",
		Log: io.MultiWriter(testLog{t}, logs),
		Services: []devstack.Service{
			{Name: "everything", Command: []string{"node", filepath.Join(nm, "@modelcontextprotocol", "server-everything", "dist", "index.js")}},
		},
	})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	everything := s.URLs["everything"]
	authserver := testenv.BuildBinary(t, "./authserver")
	admin := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(authserver, args...)
		cmd.Env = testenv.Env("AUTHSERVER_DATA_FILE=" + filepath.Join(dataDir, "authserver.jsonl"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			return stdout.String(), &commandError{err, stderr.String()}
		}
		return stdout.String(), nil
	}
	listClients := func() []string {
		t.Helper()
		var clients []struct {
			ID string `json:"client_id"`
		}
		out, err := admin("clients", "list", "--json")
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal([]byte(out), &clients), out)
		var ids []string
		for _, c := range clients {
			ids = append(ids, c.ID)
		}
		return ids
	}
	refusedAtEdge := func(token string) {
		t.Helper()
		require.Eventually(t, func() bool {
			return mcpRequest(t, everything, token).StatusCode == http.StatusUnauthorized
		}, 15*time.Second, 250*time.Millisecond, "the revoked token is refused by the plugin")
	}

	first, second := runClient(t, everything), runClient(t, everything)
	for _, r := range []clientRun{first, second} {
		require.Equal(t, http.StatusOK, mcpRequest(t, everything, r.Tokens.AccessToken).StatusCode)
	}

	// list, show, tokens list.
	assert.Subset(t, listClients(), []string{first.ClientID, second.ClientID})
	out, err := admin("clients", "show", first.ClientID)
	require.NoError(t, err)
	assert.Contains(t, out, first.ClientID)
	out, err = admin("tokens", "list", "--client", first.ClientID, "--json")
	require.NoError(t, err)
	var grants []struct {
		UserID       string `json:"user_id"`
		AccessTokens int    `json:"live_access_tokens"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &grants), out)
	require.Len(t, grants, 1)
	assert.Equal(t, "1000001", grants[0].UserID, "dev-user's grant")
	assert.Positive(t, grants[0].AccessTokens)

	// backup: the live state, into a file only its owner reads.
	backup := filepath.Join(t.TempDir(), "state.jsonl")
	_, err = admin("backup", "--out", backup)
	require.NoError(t, err)
	info, err := os.Stat(backup)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	dump, err := os.ReadFile(backup)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(dump)), "\n")
	assert.Contains(t, lines[0], `"format":"mcp-oauth-gateway-store"`)
	assert.Contains(t, string(dump), `"client_id":"`+second.ClientID+`"`)

	// restore: refused while the server runs, saying so.
	_, err = admin("restore", "--in", backup, "--yes")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "stop it first")

	// revoke and delete: the edge refuses the tokens within a poll of the revocation feed.
	out, err = admin("clients", "revoke", first.ClientID, "--yes")
	require.NoError(t, err)
	assert.Contains(t, out, "revoked 1 grant(s) of client "+first.ClientID)
	refusedAtEdge(first.Tokens.AccessToken)
	out, err = admin("clients", "delete", second.ClientID, "--yes")
	require.NoError(t, err)
	assert.Contains(t, out, "deleted client "+second.ClientID)
	refusedAtEdge(second.Tokens.AccessToken)
	assert.NotContains(t, listClients(), second.ClientID)
	assert.Contains(t, listClients(), first.ClientID, "revoke keeps the client")
	as := scrapeMetrics(t, s.Metrics["authserver"])
	assert.Equal(t, 2.0, as.value("authserver_revocations_total", "reason", "admin_client"),
		"the server counts the revocations made through its socket (revoke, and delete's revocation): %s", as)

	// The server ran every command and logged it, without a token.
	logged := logs.String()
	for _, c := range []string{`"clients list"`, `"clients show"`, `"tokens list"`, "backup", "restore", `"clients revoke"`, `"clients delete"`} {
		assert.Contains(t, logged, "command="+c)
	}
	for _, r := range []clientRun{first, second} {
		assert.NotContains(t, logged, r.Tokens.AccessToken)
		assert.NotContains(t, logged, r.Tokens.RefreshToken)
	}

	// Stopped, the server leaves the file to the commands: restore now works, and brings the deleted client back.
	s.Stop()
	_, err = os.Stat(filepath.Join(dataDir, "authserver.jsonl.sock"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the socket went with the server")
	assert.NotContains(t, listClients(), second.ClientID)
	_, err = admin("restore", "--in", backup, "--yes")
	require.NoError(t, err)
	assert.Contains(t, listClients(), second.ClientID)
}

// commandError is a failed operator command and what it wrote to stderr.
type commandError struct {
	err    error
	stderr string
}

func (e *commandError) Error() string { return e.err.Error() + ": " + e.stderr }
