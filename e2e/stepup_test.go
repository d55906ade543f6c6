package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/devstack"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// everythingAdmin is the dev stack's description of the scope get-env needs (cmd/devstack).
const everythingAdmin = "everything:admin=read the environment of the everything server (get-env), which can hold secrets"

// startStepUpStack runs the gateway as the dev stack does: the authserver offers mcp and everything:admin and
// declares the fake GitHub dev user's team as a group; server-everything runs with policies/everything.yaml, in
// which get-env needs everything:admin; mcp-diagnostic shows what reaches a backend.
func startStepUpStack(t *testing.T) *devstack.Stack {
	t.Helper()
	testenv.TraefikBin(t)
	redis := testenv.StartRedis(t)
	root, nm := testenv.RepoRoot(t), testenv.NodeModules(t)
	diagAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	testenv.Start(t, "mcp-diagnostic", exec.Command(testenv.BuildBinary(t, "./cmd/mcp-diagnostic"), "-addr", diagAddr, "-allowed-hosts", "*"))
	testenv.WaitTCP(t, diagAddr, 10*time.Second)
	s, err := devstack.Start(context.Background(), devstack.Options{
		Root: root, Port: testenv.FreePort(t), DataDir: t.TempDir(), RedisURL: redis.URL, Log: testLog{t}, Layout: "path",
		AuthserverFlags: []string{"--scopes", "mcp,everything:admin", "--scope-descriptions", everythingAdmin,
			"--groups", "dev-org/dev-team,other-org"},
		Services: []devstack.Service{
			{Name: "everything", Command: []string{"node", filepath.Join(nm, "@modelcontextprotocol", "server-everything", "dist", "index.js")},
				Flags: []string{"--policy", filepath.Join(root, "policies", "everything.yaml")}, ScopesSupported: []string{"mcp", "everything:admin"}},
			{Name: "diagnostic", Addr: diagAddr},
		},
	})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	return s
}

// stepUpRun is what testdata/node/stepup-client.mjs reports.
type stepUpRun struct {
	FirstScope             string   `json:"firstScope"`
	Tools                  []string `json:"tools"`
	WithoutStepUp          bool     `json:"withoutStepUp"`
	StepUpAuthorizationURL string   `json:"stepUpAuthorizationUrl"`
	StepUpConsent          []string `json:"stepUpConsent"`
	StepUpScope            string   `json:"stepUpScope"`
	StepUpError            string   `json:"stepUpError"`
	Result                 *struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"result"`
	Error string `json:"error"`
}

// runStepUpClient runs the TypeScript SDK's step-up as an application does it (stepup-client.mjs), with env.
func runStepUpClient(t *testing.T, env []string, mcpURL, tool string) stepUpRun {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "node")
	cmd := exec.Command(testenv.NodeBin(t), "--import", filepath.Join(dir, "localhost-resolver.mjs"), filepath.Join(dir, "stepup-client.mjs"), mcpURL, tool)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "client failed:\n%s\n%s", out, stderr)
	var r stepUpRun
	require.NoError(t, json.Unmarshal(out, &r), "%s", out)
	return r
}

// getEnvText is the text get-env answered, "" when it did not.
func (r stepUpRun) getEnvText() string {
	if r.Result == nil || r.Result.IsError || len(r.Result.Content) == 0 {
		return ""
	}
	return r.Result.Content[0].Text
}

func TestStepUpThroughTheGateway(t *testing.T) {
	s := startStepUpStack(t)
	everything, diagnostic := s.URLs["everything"], s.URLs["diagnostic"]

	t.Run("groups and the metadata URL reach the backend", func(t *testing.T) {
		who := runClient(t, diagnostic, "whoami", "{}")
		require.NotNil(t, who.Result.StructuredContent, "whoami result: %+v", who.Result)
		assert.Equal(t, "dev-org/dev-team", who.Result.StructuredContent["userGroups"],
			"the dev user's declared groups: dev-org is not declared, other-org not joined")
		assert.Equal(t, s.Issuer+"/.well-known/oauth-protected-resource/diagnostic/mcp", who.Result.StructuredContent["resourceMetadata"])
	})

	t.Run("the scopes are advertised", func(t *testing.T) {
		var prm, as struct {
			ScopesSupported []string `json:"scopes_supported"`
		}
		getJSON(t, s.Issuer+"/.well-known/oauth-protected-resource/everything/mcp", &prm)
		assert.Equal(t, []string{"mcp", "everything:admin"}, prm.ScopesSupported)
		getJSON(t, s.Issuer+"/.well-known/oauth-authorization-server", &as)
		assert.ElementsMatch(t, []string{"mcp", "everything:admin", "offline_access"}, as.ScopesSupported)
	})

	t.Run("the TypeScript SDK client steps up and completes the call", func(t *testing.T) {
		r := runStepUpClient(t, nil, everything, "get-env")
		// The 2.x client adds offline_access (SEP-2207) to what the 401 names.
		assert.Equal(t, "mcp offline_access", r.FirstScope, "the first authorization asks for what the 401 names")
		assert.Contains(t, r.Tools, "get-env", "a tool allowed by step-up stays listed")
		assert.False(t, r.WithoutStepUp, "get-env was not answered with the first token")
		require.NotEmpty(t, r.StepUpAuthorizationURL, "the SDK met the 403 and authorized again: %+v", r)
		u, err := url.Parse(r.StepUpAuthorizationURL)
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"everything:admin", "mcp", "offline_access"}, strings.Fields(u.Query().Get("scope")), "the union")
		assert.Contains(t, r.StepUpConsent, "everything:admin: read the environment of the everything server (get-env), "+
			"which can hold secrets (new: not approved before)")
		assert.Contains(t, r.StepUpConsent, "mcp: use this MCP server's tools, resources and prompts as you")
		assert.Equal(t, "everything:admin mcp offline_access", r.StepUpScope)
		assert.Empty(t, r.Error)
		assert.Contains(t, r.getEnvText(), "PATH", "get-env answered the retried call")
	})

	t.Run("refused consent gets no access", func(t *testing.T) {
		r := runStepUpClient(t, []string{"STEPUP_ANSWER=deny"}, everything, "get-env")
		require.NotEmpty(t, r.StepUpAuthorizationURL, "%+v", r)
		assert.Equal(t, "access_denied", r.StepUpError)
		assert.Empty(t, r.getEnvText(), "get-env never answered")
		assert.NotEmpty(t, r.Error, "the call after the refusal fails too")
	})

	t.Run("the TypeScript SDK 1.x dead-ends while it holds a refresh token", func(t *testing.T) {
		// It refreshes instead of authorizing, gets the same scope back, and gives up
		// (modelcontextprotocol/typescript-sdk#2255); docs/authserver.md says so.
		r := runStepUpClient(t, []string{"SDK=1"}, everything, "get-env")
		assert.Empty(t, r.StepUpAuthorizationURL)
		assert.Contains(t, r.Error, "403 after trying upscoping")
		assert.Empty(t, r.getEnvText())
	})

	t.Run("the Go SDK client steps up and completes the call", func(t *testing.T) {
		var consents []string
		fetch := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			b := browser.New(devstack.Client())
			b.Action, b.StopAt = "approve", []string{redirectURI}
			res, err := b.Run(ctx, args.URL)
			if err != nil {
				return nil, err
			}
			consents = append(consents, res.Consent)
			require.NotNil(t, res.Location, "the authorization ended on a page: %s", res.Page)
			q := res.Location.Query()
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		}
		h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName: "Go SDK step-up", RedirectURIs: []string{redirectURI}, TokenEndpointAuthMethod: "none",
				GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			}},
			RedirectURL: redirectURI, AuthorizationCodeFetcher: fetch, Client: devstack.Client(),
		})
		require.NoError(t, err)
		ctx := context.Background()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-go", Version: "1"}, nil).Connect(ctx,
			&mcp.StreamableClientTransport{Endpoint: everything, HTTPClient: devstack.Client(), OAuthHandler: h}, nil)
		require.NoError(t, err)
		defer cs.Close()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get-env"})
		require.NoError(t, err)
		require.False(t, res.IsError, "%+v", res.Content)
		assert.Contains(t, res.Content[0].(*mcp.TextContent).Text, "PATH")
		require.Len(t, consents, 2, "one authorization to connect, one step-up")
		assert.NotContains(t, consents[0], "<code>everything:admin</code>")
		assert.Contains(t, consents[1], "<code>everything:admin</code>: read the environment")
		// The Go SDK registers anew for each authorization, so the step-up's client has approved nothing before
		// and nothing is marked as new.
		assert.NotEqual(t, clientIDOf(consents[0]), clientIDOf(consents[1]))
	})
}

const redirectURI = "http://127.0.0.1:39998/callback"

// clientIDOf reads the client id a consent page names.
func clientIDOf(page string) string {
	_, rest, _ := strings.Cut(page, "Client id: <code>")
	id, _, _ := strings.Cut(rest, "</code>")
	return id
}
