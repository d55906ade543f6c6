package oauth_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The official MCP conformance suite's authorization-server scenarios, run against this server: its metadata, and
// the authorization code grant with the browser step played through the fake GitHub and the consent page.
func TestAuthorizationServerConformance(t *testing.T) {
	node := testenv.NodeBin(t)
	suite := filepath.Join(testenv.NodeModules(t), "conformance-alpha", "dist", "index.js")
	e := newEnv(t, backends[1], "octo") // Redis, as in production
	e.docs = clientmeta.New(clientmeta.Config{})
	e.start("octo")
	port := testenv.FreePort(t)
	status, c := e.register(map[string]any{"client_name": "MCP conformance suite", "token_endpoint_auth_method": "none",
		"redirect_uris": []string{"http://127.0.0.1:" + strconv.Itoa(port) + "/callback"}})
	require.Equal(t, http.StatusCreated, status, c)

	outDir := t.TempDir()
	// Both scenarios in one run: the grant scenario reads the metadata the first one fetched.
	cmd := exec.Command(node, suite, "authorization", "--url", e.issuer,
		"--client-id", c["client_id"].(string), "--resource", resource, "-p", strconv.Itoa(port), "-o", outDir)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	var out strings.Builder
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		authURL := ""
		for lines := bufio.NewScanner(stdout); lines.Scan(); {
			line := lines.Text()
			out.WriteString(line + "\n")
			// The suite asks a person to open the authorization URL; once its callback server listens, the test's
			// browser does.
			if strings.HasPrefix(line, e.issuer+"/authorize?") {
				authURL = line
			}
			if strings.HasPrefix(line, "Callback server started") && authURL != "" {
				go e.browseToCallback(t, authURL)
			}
		}
	}()
	done := make(chan error, 1)
	go func() { <-finished; done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the suite did not finish:\n%s", out.String())
	}
	require.NoError(t, err, "the conformance suite failed:\n%s", out.String())
	assert.Contains(t, out.String(), "Total: 3 passed, 0 failed")
	// Every check the scenarios made, from their result files: all pass, none warns.
	files, err := filepath.Glob(filepath.Join(outDir, "*", "checks.json"))
	require.NoError(t, err)
	seen := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var checks []struct{ ID, Status, ErrorMessage string }
		require.NoError(t, json.Unmarshal(b, &checks), f)
		for _, c := range checks {
			seen[c.ID] = c.Status
			assert.Equal(t, "SUCCESS", c.Status, "check %s: %s", c.ID, c.ErrorMessage)
		}
	}
	for _, id := range []string{"authorization-server-metadata", "authorization-server-metadata-cimd", "authorization-code-grant"} {
		assert.Contains(t, seen, id, "the suite ran check %s", id)
	}
}

// browseToCallback plays the user's browser from the authorization URL to the client's redirect, and delivers it.
func (e *env) browseToCallback(t *testing.T, authURL string) {
	u, err := url.Parse(authURL)
	if err != nil {
		t.Errorf("bad authorization URL: %v", err)
		return
	}
	o := e.browse(u.Query(), "approve")
	if o.location == nil {
		t.Errorf("authorization stopped on a page: %d %s", o.status, o.page)
		return
	}
	resp, err := http.Get(o.location.String())
	if err != nil {
		t.Errorf("deliver the callback: %v", err)
		return
	}
	resp.Body.Close()
}
