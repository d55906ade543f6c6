package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testenv"
)

// secrets stand in for what an operator writes into .env.
var secrets = []string{"GITHUB_CLIENT_ID=app-id", "GITHUB_CLIENT_SECRET=app-secret", "ALLOWED_GITHUB_USERS=octo"}

func loadCompose(t *testing.T, profiles []string, env []string) (*types.Project, error) {
	t.Helper()
	root := testenv.RepoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml")},
		cli.WithWorkingDirectory(root), cli.WithEnvFiles(filepath.Join(root, ".env.example")), cli.WithDotEnv,
		cli.WithEnv(env), cli.WithProfiles(profiles))
	require.NoError(t, err)
	return opts.LoadProject(context.Background())
}

// No Docker engine runs the deployment here, so the compose file is checked by loading it the way docker compose does.
func TestComposeDeployment(t *testing.T) {
	p, err := loadCompose(t, []string{"*"}, secrets)
	require.NoError(t, err)

	mcp := []string{"everything", "memory", "filesystem", "sequential-thinking", "fetch", "time"}
	names := []string{"traefik", "redis", "authserver"}
	for _, m := range mcp {
		names = append(names, "mcp-"+m)
	}
	require.ElementsMatch(t, names, p.ServiceNames())

	for _, name := range names {
		s := p.Services[name]
		require.NotNil(t, s.HealthCheck, "%s has a health check", name)
		assert.NotEmpty(t, s.HealthCheck.Test, "%s health check", name)
		assert.Contains(t, s.Networks, "gateway", "%s is on the gateway network", name)
	}

	redis := p.Services["redis"]
	assert.Empty(t, redis.Ports, "Redis is not published to the host")
	assert.Contains(t, redis.Command, "--appendonly")
	assert.Contains(t, redis.Command, "--requirepass")

	auth := p.Services["authserver"]
	env := map[string]string{}
	for k, v := range auth.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	assert.Equal(t, "https://auth.example.com", env["AUTHSERVER_ISSUER"])
	assert.Equal(t, "app-id", env["GITHUB_CLIENT_ID"])
	assert.Equal(t, "app-secret", env["GITHUB_CLIENT_SECRET"])
	assert.Regexp(t, `^redis://:.+@redis:6379/0$`, env["REDIS_URL"])
	assert.Empty(t, auth.Ports, "the authserver is reached through Traefik only")
	assert.Equal(t, ":9090", env["AUTHSERVER_METRICS_LISTEN"], "metrics on the internal network")

	// Every AUTHSERVER_* variable names a real flag of the binary.
	help, _ := exec.Command(testenv.BuildBinary(t, "./authserver"), "--help").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(help), -1) {
		flags[m[1]] = true
	}
	require.True(t, flags["issuer"], "authserver --help lists its flags:\n%s", help)
	for k := range env {
		if name, ok := strings.CutPrefix(k, "AUTHSERVER_"); ok {
			assert.True(t, flags[strings.ToLower(strings.ReplaceAll(name, "_", "-"))], "%s matches no authserver flag", k)
		}
	}

	// Each MCP service: its own profile, routed by host through the plugin with its own resource.
	for _, m := range mcp {
		s := p.Services["mcp-"+m]
		assert.Equal(t, []string{m}, s.Profiles)
		router := strings.ReplaceAll(m, "-", "")
		assert.Equal(t, "Host(`"+m+".example.com`)", s.Labels["traefik.http.routers."+router+".rule"])
		assert.Equal(t, "mcp-cors,"+router+"-auth", s.Labels["traefik.http.routers."+router+".middlewares"])
		prefix := "traefik.http.middlewares." + router + "-auth.plugin.mcpoauth."
		assert.Equal(t, env["AUTHSERVER_ISSUER"], s.Labels[prefix+"issuer"], "the plugin trusts the authserver's issuer")
		assert.Equal(t, "https://"+m+".example.com/mcp", s.Labels[prefix+"resource"])
		assert.True(t, slices.Contains(s.Command, "--"), "streamproxy runs the server after --")
		require.NotNil(t, s.Environment["STREAMPROXY_METRICS_LISTEN"], "%s serves metrics", m)
		assert.Empty(t, s.Ports, "%s is reached through Traefik only; its metrics stay internal", m)
	}

	// CORS for browser clients, and GitHub's code (in the callback's query) kept out of the access log.
	labels := auth.Labels
	assert.Contains(t, labels["traefik.http.middlewares.mcp-cors.headers.accesscontrolallowheaders"], "MCP-Protocol-Version")
	assert.Contains(t, labels["traefik.http.middlewares.mcp-cors.headers.accesscontrolexposeheaders"], "WWW-Authenticate")
	assert.Contains(t, labels["traefik.http.middlewares.mcp-cors.headers.accesscontrolexposeheaders"], "Mcp-Session-Id")
	assert.Equal(t, "*", labels["traefik.http.middlewares.mcp-cors.headers.accesscontrolalloworiginlist"])
	assert.Contains(t, labels["traefik.http.routers.authserver-private.rule"], "Path(`/github/callback`)")
	assert.Equal(t, "false", labels["traefik.http.routers.authserver-private.observability.accesslogs"])

	traefik := p.Services["traefik"]
	cmd := strings.Join(traefik.Command, " ")
	assert.Contains(t, cmd, "--experimental.plugins.mcpoauth.modulename=github.com/mcp-oauth-gateway/gateway")
	assert.Contains(t, cmd, "--accesslog.fields.headers.defaultmode=drop", "access logs never record Authorization")
	assert.Contains(t, cmd, "certificatesresolvers.letsencrypt.acme")
}

// Profiles switch MCP services on and off without editing the file.
func TestComposeProfiles(t *testing.T) {
	p, err := loadCompose(t, []string{"memory"}, secrets)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"traefik", "redis", "authserver", "mcp-memory"}, p.ServiceNames())
}

// A deployment without its GitHub credentials does not start half-configured.
func TestComposeRequiresSecrets(t *testing.T) {
	_, err := loadCompose(t, []string{"everything"}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "GITHUB_CLIENT_ID")
}
