package e2e

import (
	"context"
	"os"
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
	"go.yaml.in/yaml/v3"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
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

	mcp := []string{"everything", "memory", "filesystem", "sequential-thinking", "fetch", "time", "terminal", "browser"}
	names := []string{"traefik", "redis", "authserver", "jaeger"}
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
	assert.Contains(t, redis.Command, "always", "every acknowledged write is in the append-only file (appendfsync always)")
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
	assert.Equal(t, ":9001", env["AUTHSERVER_FEED_LISTEN"], "the revocation feed on the internal network")

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
		assert.Equal(t, "mcp-cors,"+router+"-auth,mcp-backend-secret", s.Labels["traefik.http.routers."+router+".middlewares"],
			"Traefik proves to streamproxy that the request came through the gateway")
		prefix := "traefik.http.middlewares." + router + "-auth.plugin.mcpoauth."
		assert.Equal(t, env["AUTHSERVER_ISSUER"], s.Labels[prefix+"issuer"], "the plugin trusts the authserver's issuer")
		assert.Equal(t, "https://"+m+".example.com/mcp", s.Labels[prefix+"resource"])
		assert.Equal(t, "http://authserver:9001/revocations", s.Labels[prefix+"revocationFeedUrl"], "the plugin polls the internal feed listener")
		assert.True(t, slices.Contains(s.Command, "--"), "streamproxy runs the server after --")
		require.NotNil(t, s.Environment["STREAMPROXY_METRICS_LISTEN"], "%s serves metrics", m)
		require.NotNil(t, s.Environment["STREAMPROXY_SECRET"])
		assert.Equal(t, "change-me-too", *s.Environment["STREAMPROXY_SECRET"], "%s knows the secret Traefik sends", m)
		assert.Empty(t, s.Ports, "%s is reached through Traefik only; its metrics stay internal", m)
	}

	// The stateful services keep each user's state apart by default.
	assert.Contains(t, p.Services["mcp-memory"].Command, "MEMORY_FILE_PATH=/data/users/{user}/memory.json")
	fs := p.Services["mcp-filesystem"].Command
	assert.Equal(t, "/data/users/{user}", fs[slices.Index(fs, "--workdir")+1])
	assert.Contains(t, fs, "--hide-client-roots", "no client's roots replace the user's directory")
	// Servers that keep nothing between calls are shared, with nothing of a user's in their settings (--share
	// refuses {user}); uvx's cache and home are the shared processes' own. One that keeps a session's state in its
	// memory gets processes started ahead instead.
	for _, m := range []string{"mcp-everything", "mcp-fetch", "mcp-time"} {
		cmd := p.Services[m].Command
		assert.Contains(t, cmd, "--share", m)
		assert.NotContains(t, strings.Join(cmd, " "), "{user}", m)
	}
	for _, m := range []string{"mcp-fetch", "mcp-time"} {
		assert.Contains(t, p.Services[m].Command, "UV_CACHE_DIR=/data/uv-cache", m)
	}
	assert.Contains(t, p.Services["mcp-sequential-thinking"].Command, "--pool")
	// The terminal and the browser run as streamproxy's TestTerminalServerBoxes and TestBrowserServerBoxes run them:
	// the image's boxes stage, the sandbox required, each user's home their working directory and TMPDIR.
	for _, m := range []string{"mcp-terminal", "mcp-browser"} {
		s := p.Services[m]
		require.NotNil(t, s.Build, m)
		assert.Equal(t, "boxes", s.Build.Target, m)
		cmd := s.Command
		assert.Equal(t, "required", cmd[slices.Index(cmd, "--sandbox")+1], "%s never runs unconfined", m)
		assert.Equal(t, "/data/users/{user}", cmd[slices.Index(cmd, "--workdir")+1], m)
		for _, env := range []string{"HOME=/data/users/{user}", "TMPDIR=/data/users/{user}"} {
			assert.Contains(t, cmd, env, m)
		}
	}
	assert.Contains(t, p.Services["mcp-terminal"].Command, "MCP_SHELL_ENHANCED_MODE=false")
	browser := p.Services["mcp-browser"].Command
	assert.Equal(t, "/etc/fonts", browser[slices.Index(browser, "--sandbox-allow-read")+1])
	assert.Equal(t, []string{"playwright-mcp", "--config", "/etc/playwright-mcp.json", "--user-data-dir", "profile"},
		[]string(browser[slices.Index(browser, "--")+1:]))

	// CORS for browser clients, and GitHub's code (in the callback's query) kept out of the access log.
	labels := auth.Labels
	assert.Equal(t, "change-me-too", labels["traefik.http.middlewares.mcp-backend-secret.headers.customrequestheaders.X-Streamproxy-Secret"])
	forwarded, ok := labels["traefik.http.middlewares.mcp-backend-secret.headers.customrequestheaders.X-Streamproxy-Forwarded"]
	assert.True(t, ok && forwarded == "", "a client's X-Streamproxy-Forwarded is removed: only replicas set it")
	assert.Equal(t, "HostRegexp(`^[a-z0-9-]+\\.example.com$`) && Method(`OPTIONS`) && HeaderRegexp(`Access-Control-Request-Headers`, `(?i)x-streamproxy-`)",
		labels["traefik.http.routers.streamproxy-headers.rule"], "a preflight that asks to send it is refused")
	assert.Equal(t, "not-public", labels["traefik.http.routers.streamproxy-headers.middlewares"])
	assert.Contains(t, labels["traefik.http.middlewares.mcp-cors.headers.accesscontrolallowheaders"], "MCP-Protocol-Version")
	assert.Contains(t, labels["traefik.http.middlewares.mcp-cors.headers.accesscontrolexposeheaders"], "WWW-Authenticate")
	assert.Contains(t, labels["traefik.http.middlewares.mcp-cors.headers.accesscontrolexposeheaders"], "Mcp-Session-Id")
	assert.Equal(t, "*", labels["traefik.http.middlewares.mcp-cors.headers.accesscontrolalloworiginlist"])
	assert.Contains(t, labels["traefik.http.routers.authserver-private.rule"], "Path(`/github/callback`)")
	assert.Contains(t, labels["traefik.http.routers.authserver-private.rule"], "PathRegexp(`^/oidc/[^/]+/callback$`)",
		"every OpenID provider's callback too (the compose file escapes the $)")
	assert.Contains(t, labels["traefik.http.routers.authserver-private.rule"], "Path(`/login`)")
	assert.Contains(t, labels["traefik.http.routers.authserver-private.rule"], "PathPrefix(`/connect/`)",
		"connect links carry a ticket and the upstreams' callbacks a code")
	assert.Equal(t, "false", labels["traefik.http.routers.authserver-private.observability.accesslogs"])
	// The revocation feed is refused on the public host: only the internal listener serves it to Traefik.
	assert.Equal(t, "Host(`auth.example.com`) && Path(`/revocations`)", labels["traefik.http.routers.authserver-feed.rule"])
	assert.Equal(t, "not-public", labels["traefik.http.routers.authserver-feed.middlewares"])
	assert.Equal(t, "255.255.255.255/32", labels["traefik.http.middlewares.not-public.ipallowlist.sourcerange"])

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

// A deployment without an identity provider (GitHub's credentials, or OpenID providers) does not start half-configured.
func TestComposeRequiresSecrets(t *testing.T) {
	_, err := loadCompose(t, []string{"everything"}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "GITHUB_CLIENT_ID")
	assert.Contains(t, err.Error(), "or AUTHSERVER_OIDC_PROVIDERS", "the message names both ways")
}

// GitHub is no longer required when OpenID providers are set; their settings (named after them) reach the
// authserver from .env whole; the label says who users log in with.
func TestComposeIdentityProviders(t *testing.T) {
	p, err := loadCompose(t, []string{"everything"}, []string{"AUTHSERVER_OIDC_PROVIDERS=google"})
	require.NoError(t, err, "OpenID providers alone are enough")
	auth := p.Services["authserver"]
	assert.Equal(t, "oidc: google", auth.Labels["mcp-gateway.identity-providers"])
	assert.Empty(t, auth.Environment["GITHUB_CLIENT_ID"])
	require.Len(t, auth.EnvFiles, 1)
	assert.Equal(t, filepath.Join(testenv.RepoRoot(t), ".env"), auth.EnvFiles[0].Path)
	assert.False(t, bool(auth.EnvFiles[0].Required), "a deployment configured through the environment has no .env")

	p, err = loadCompose(t, []string{"everything"}, append(slices.Clone(secrets), "AUTHSERVER_OIDC_PROVIDERS=okta"))
	require.NoError(t, err)
	assert.Equal(t, "github, oidc: okta", p.Services["authserver"].Labels["mcp-gateway.identity-providers"])
	p, err = loadCompose(t, []string{"everything"}, secrets)
	require.NoError(t, err)
	assert.Equal(t, "github: app-id", p.Services["authserver"].Labels["mcp-gateway.identity-providers"])

	// The local stack keeps to its fake GitHub whatever a filled-in .env says.
	local := loadLocal(t)
	assert.Equal(t, "", *local.Services["authserver"].Environment["AUTHSERVER_OIDC_PROVIDERS"])
}

// loadLocal loads the local stack as its README command does: docker compose --env-file compose.local.env -f
// compose.yaml -f compose.local.yaml.
func loadLocal(t *testing.T) *types.Project {
	t.Helper()
	root := testenv.RepoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml"), filepath.Join(root, "compose.local.yaml")},
		cli.WithWorkingDirectory(root), cli.WithEnvFiles(filepath.Join(root, "compose.local.env")), cli.WithDotEnv,
		cli.WithDefaultProfiles())
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err)
	return p
}

func environment(s types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// flagValue is the value after name in a command line.
func flagValue(cmd []string, name string) string {
	if i := slices.Index(cmd, name); i >= 0 && i+1 < len(cmd) {
		return cmd[i+1]
	}
	return ""
}

// The local stack: the production images on http://localhost in the path layout, with the plugin from this checkout,
// and a fake GitHub that only this file brings in and only loopback reaches.
func TestComposeLocal(t *testing.T) {
	root := testenv.RepoRoot(t)
	p := loadLocal(t)
	assert.Equal(t, "mcp-oauth-gateway-local", p.Name, "apart from a production deployment's containers and volumes")
	require.ElementsMatch(t, []string{"traefik", "redis", "authserver", "mcp-everything", "fakegithub"}, p.ServiceNames())

	prod, err := loadCompose(t, []string{"*"}, secrets)
	require.NoError(t, err)
	for _, name := range []string{"traefik", "redis", "authserver", "mcp-everything"} {
		assert.Equal(t, prod.Services[name].Image, p.Services[name].Image, "%s runs the production image", name)
		assert.Equal(t, prod.Services[name].Build, p.Services[name].Build, "%s is built as in production", name)
		assert.Equal(t, prod.Services[name].HealthCheck, p.Services[name].HealthCheck, "%s keeps its health check", name)
	}
	_, inProd := prod.Services["fakegithub"]
	assert.False(t, inProd, "the fake GitHub is in compose.local.yaml only")

	traefik := p.Services["traefik"]
	cmd := strings.Join(traefik.Command, " ")
	for _, absent := range []string{"acme", "certificatesresolvers", "websecure", "providers.docker", "experimental.plugins."} {
		assert.NotContains(t, cmd, absent)
	}
	assert.Contains(t, cmd, "--entrypoints.web.address=:80")
	assert.Contains(t, cmd, "--experimental.localplugins.mcpoauth.modulename=github.com/mcp-oauth-gateway/gateway")
	assert.Contains(t, cmd, "--accesslog.fields.headers.defaultmode=drop", "access logs never record Authorization")
	for _, arg := range prod.Services["traefik"].Command {
		if strings.HasPrefix(arg, "--tracing.") {
			assert.Contains(t, traefik.Command, arg, "the local stack traces as production does")
		}
	}
	require.Len(t, traefik.Ports, 1)
	assert.Equal(t, "127.0.0.1", traefik.Ports[0].HostIP, "published on loopback only: the fake GitHub lets anyone in")
	assert.Equal(t, "80", traefik.Ports[0].Published)
	mounts := map[string]string{}
	for _, v := range traefik.Volumes {
		rel, err := filepath.Rel(root, v.Source)
		require.NoError(t, err)
		mounts[v.Target] = rel
		assert.True(t, v.ReadOnly, "%s is mounted read-only", v.Target)
	}
	plugin := "/plugins-local/src/github.com/mcp-oauth-gateway/gateway"
	assert.Equal(t, map[string]string{
		"/etc/traefik/dynamic/gateway.yml":    "traefik/dynamic/gateway.yml",
		"/etc/traefik/dynamic/fakegithub.yml": "traefik/local/fakegithub.yml",
		plugin + "/.traefik.yml":              ".traefik.yml",
		plugin + "/go.mod":                    "go.mod",
		plugin + "/plugin":                    "plugin",
	}, mounts, "no Docker socket, no certificate store; the plugin as the dev stack lays it out")
	tenv := environment(traefik)
	assert.Equal(t, map[string]string{
		"GATEWAY_LAYOUT": "path", "GATEWAY_DOMAIN": "localhost", "GATEWAY_SCHEME": "http", "GATEWAY_ENTRYPOINT": "web",
		"GATEWAY_CERT_RESOLVER": "none", "MCP_SERVICES": "everything", "AUTHSERVER_URL": "http://authserver:9000",
		"CORS_ALLOWED_ORIGINS": "*",
	}, tenv)

	// The authserver: issuer and resources of the path layout, GitHub replaced by the fake at http://github.localhost,
	// which Traefik answers for (its network alias inside, *.localhost on the host).
	auth := environment(p.Services["authserver"])
	assert.Equal(t, "http://localhost", auth["AUTHSERVER_ISSUER"])
	assert.Equal(t, "http://localhost/*/mcp", auth["AUTHSERVER_RESOURCE_PATTERNS"])
	assert.Equal(t, "http://github.localhost/", auth["AUTHSERVER_GITHUB_WEB_URL"])
	assert.Equal(t, "http://github.localhost/api/v3/", auth["AUTHSERVER_GITHUB_API_URL"])
	assert.Equal(t, "dev-user", auth["ALLOWED_GITHUB_USERS"])
	assert.Equal(t, "redis://:local-development-only@redis:6379/0", auth["REDIS_URL"])
	require.NotNil(t, traefik.Networks["gateway"])
	assert.Contains(t, traefik.Networks["gateway"].Aliases, "github.localhost")

	fake := p.Services["fakegithub"]
	assert.Equal(t, "service:traefik", fake.NetworkMode, "it listens on Traefik's loopback, reached through Traefik only")
	assert.Contains(t, fake.Image, "dev", "the image name says development only")
	assert.Contains(t, fake.Labels["org.opencontainers.image.description"], "DEVELOPMENT ONLY")
	assert.Equal(t, "127.0.0.1:9099", flagValue(fake.Command, "--listen"))
	assert.Equal(t, auth["GITHUB_CLIENT_ID"], flagValue(fake.Command, "--client-id"))
	assert.Equal(t, auth["GITHUB_CLIENT_SECRET"], flagValue(fake.Command, "--client-secret"))
	assert.Equal(t, auth["AUTHSERVER_ISSUER"]+"/github/callback", flagValue(fake.Command, "--callback-url"))
	assert.Empty(t, fake.Ports)

	// Traefik's route to the fake GitHub goes to where it listens.
	var route struct {
		HTTP struct {
			Routers map[string]struct {
				Rule        string   `yaml:"rule"`
				EntryPoints []string `yaml:"entryPoints"`
			} `yaml:"routers"`
			Services map[string]struct {
				LoadBalancer struct {
					Servers []struct {
						URL string `yaml:"url"`
					} `yaml:"servers"`
				} `yaml:"loadBalancer"`
			} `yaml:"services"`
		} `yaml:"http"`
	}
	data, err := os.ReadFile(filepath.Join(root, "traefik", "local", "fakegithub.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &route))
	assert.Equal(t, "Host(`github.localhost`)", route.HTTP.Routers["fakegithub"].Rule)
	assert.Equal(t, []string{tenv["GATEWAY_ENTRYPOINT"]}, route.HTTP.Routers["fakegithub"].EntryPoints)
	require.Len(t, route.HTTP.Services["fakegithub"].LoadBalancer.Servers, 1)
	assert.Equal(t, "http://"+flagValue(fake.Command, "--listen"), route.HTTP.Services["fakegithub"].LoadBalancer.Servers[0].URL)
}

// Every image is built from the repository root with a Dockerfile that exists: what e2e/docker assumes when it
// replays the Dockerfiles.
func TestComposeBuildContexts(t *testing.T) {
	root := testenv.RepoRoot(t)
	prod, err := loadCompose(t, []string{"*"}, secrets)
	require.NoError(t, err)
	built := 0
	for _, p := range []*types.Project{prod, loadLocal(t)} {
		for name, s := range p.Services {
			if s.Build == nil {
				continue
			}
			built++
			assert.Equal(t, root, s.Build.Context, "%s is built from the repository root", name)
			assert.FileExists(t, filepath.Join(root, s.Build.Dockerfile), name)
		}
	}
	assert.Positive(t, built)
}

// One documented switch per service shares its state among all users instead (a team knowledge base).
func TestComposeSharedState(t *testing.T) {
	p, err := loadCompose(t, []string{"*"}, append(slices.Clone(secrets), "MEMORY_FILE=/data/memory.json", "FILESYSTEM_ROOT=/data"))
	require.NoError(t, err)
	assert.Contains(t, p.Services["mcp-memory"].Command, "MEMORY_FILE_PATH=/data/memory.json")
	fs := p.Services["mcp-filesystem"].Command
	assert.Equal(t, "/data", fs[slices.Index(fs, "--workdir")+1])
}
