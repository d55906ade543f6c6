package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/localplugin"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/plugintest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// traefikEnv is a real Traefik 3.6 loading the plugin from plugins-local, in front of an echo backend.
type traefikEnv struct {
	dir      string
	dynamic  map[string]interface{} // the file provider's configuration, to change it in a test
	port     int
	resource string
	iss      *plugintest.Issuer
	proc     *testenv.Process
}

func (e *traefikEnv) url(path string) string { return testenv.URL(e.port, path) }

// echoBackend answers with the request headers it got, as JSON, or with a constant to requests marked X-Bench, so
// the benchmark compares routes with the same backend cost.
func echoBackend(t testing.TB) *httptest.Server {
	ok := []byte("ok")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Bench") != "" {
			_, _ = w.Write(ok)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// manifest reads the repository's .traefik.yml.
func manifest(t testing.TB) map[string]interface{} {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), ".traefik.yml"))
	require.NoError(t, err)
	var m map[string]interface{}
	require.NoError(t, yaml.Unmarshal(b, &m))
	return m
}

// startTraefik lays out the plugin from the working tree as a local plugin (internal/localplugin) in a temporary
// directory and runs Traefik there with a file provider. The middleware mcp-auth gets its configuration as strings
// only, the way docker labels deliver it.
func startTraefik(t testing.TB) *traefikEnv {
	bin := testenv.TraefikBin(t)
	dir := t.TempDir()
	env := &traefikEnv{port: testenv.FreePort(t), iss: plugintest.NewIssuer(t)}
	env.iss.AddES256("es")
	env.resource = fmt.Sprintf("http://127.0.0.1:%d/everything/mcp", env.port)
	be := echoBackend(t)

	labelsStyle := map[string]interface{}{
		"issuer":                 env.iss.URL,
		"resource":               env.resource,
		"resourceName":           "Everything",
		"scopes":                 "mcp",
		"algorithms":             "ES256,RS256",
		"clockSkew":              "30s",
		"cacheSize":              "1000",
		"keepAuthorization":      "false",
		"revocationPollInterval": "1s",
		"headers":                map[string]interface{}{"userId": "X-User-Id", "clientId": "X-Client-Id"},
	}
	testData, ok := manifest(t)["testData"].(map[string]interface{})
	require.True(t, ok, ".traefik.yml has no testData map")
	dynamic := map[string]interface{}{"http": map[string]interface{}{
		"routers": map[string]interface{}{
			"mcp": map[string]interface{}{
				"rule":        "PathPrefix(`/everything/mcp`) || PathPrefix(`/.well-known/oauth-protected-resource`)",
				"entryPoints": []string{"web"}, "middlewares": []string{"mcp-auth"}, "service": "backend",
			},
			"testdata": map[string]interface{}{
				"rule": "PathPrefix(`/testdata`)", "entryPoints": []string{"web"},
				"middlewares": []string{"from-testdata"}, "service": "backend",
			},
			"noauth": map[string]interface{}{"rule": "PathPrefix(`/noauth`)", "entryPoints": []string{"web"}, "service": "backend"},
			"noop": map[string]interface{}{
				"rule": "PathPrefix(`/noop`)", "entryPoints": []string{"web"}, "middlewares": []string{"noop"}, "service": "backend",
			},
			"native": map[string]interface{}{
				"rule": "PathPrefix(`/native`)", "entryPoints": []string{"web"}, "middlewares": []string{"native-headers"}, "service": "backend",
			},
		},
		"middlewares": map[string]interface{}{
			"mcp-auth":      map[string]interface{}{"plugin": map[string]interface{}{"mcpoauth": labelsStyle}},
			"from-testdata": map[string]interface{}{"plugin": map[string]interface{}{"mcpoauth": testData}},
			"noop":          map[string]interface{}{"plugin": map[string]interface{}{"noop": map[string]interface{}{}}},
			// Traefik's compiled headers middleware doing the same header writes, for comparison.
			"native-headers": map[string]interface{}{"headers": map[string]interface{}{"customRequestHeaders": map[string]string{
				"X-User-Id": "1", "X-User-Name": "a", "X-Client-Id": "c", "X-Scopes": "mcp", "X-User-Email": "", "Authorization": "",
			}}},
		},
		"services": map[string]interface{}{"backend": map[string]interface{}{
			"loadBalancer": map[string]interface{}{"servers": []interface{}{map[string]string{"url": be.URL}}},
		}},
	}}
	env.dir, env.dynamic = dir, dynamic
	// YAML is a superset of JSON, so the dynamic configuration is written with encoding/json.
	b, err := json.MarshalIndent(dynamic, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dynamic.yml"), b, 0o644))
	// The do-nothing Yaegi plugin is the benchmark's measure of what any interpreted middleware costs in Traefik.
	static, err := localplugin.Setup(dir, localplugin.Static{
		Address:     fmt.Sprintf("127.0.0.1:%d", env.port),
		DynamicFile: filepath.Join(dir, "dynamic.yml"),
		LogLevel:    "INFO",
		Plugins:     []localplugin.Plugin{localplugin.Gateway(testenv.RepoRoot(t)), localplugin.Noop()},
		Extra:       map[string]any{"ping": map[string]any{"entryPoint": "web"}},
	})
	require.NoError(t, err)

	cmd := exec.Command(bin, "--configFile="+static)
	cmd.Dir = dir // local plugins are read from ./plugins-local
	env.proc = testenv.Start(t, "traefik", cmd)
	testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", env.port), 30*time.Second)
	// The router exists once the file provider is read and the plugin is built: then the middleware challenges.
	require.Eventually(t, func() bool {
		resp, err := http.Get(env.url("/everything/mcp"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	}, 60*time.Second, 50*time.Millisecond, "the mcp router never answered 401; Traefik output:\n%s", env.proc.Output())
	return env
}

func send(t testing.TB, method, u string, hdr map[string]string) (*http.Response, []byte) {
	req, err := http.NewRequest(method, u, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// untilNot503 repeats a request while the middleware is still loading keys.
func untilNot503(t testing.TB, method, u string, hdr map[string]string) (*http.Response, []byte) {
	var resp *http.Response
	var body []byte
	require.Eventually(t, func() bool {
		resp, body = send(t, method, u, hdr)
		return resp.StatusCode != http.StatusServiceUnavailable
	}, 30*time.Second, 50*time.Millisecond)
	return resp, body
}

func TestTraefikLoadsPlugin(t *testing.T) {
	env := startTraefik(t)
	prmURL := fmt.Sprintf("http://127.0.0.1:%d/.well-known/oauth-protected-resource/everything/mcp", env.port)

	t.Run("no token gets 401 with the challenge", func(t *testing.T) {
		resp, _ := send(t, http.MethodPost, env.url("/everything/mcp"), nil)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, `Bearer resource_metadata="`+prmURL+`", scope="mcp"`, resp.Header.Get("WWW-Authenticate"))
	})

	t.Run("protected-resource metadata", func(t *testing.T) {
		resp, body := send(t, http.MethodGet, prmURL, map[string]string{"MCP-Protocol-Version": "2025-11-25"})
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var prm map[string]interface{}
		require.NoError(t, json.Unmarshal(body, &prm))
		assert.Equal(t, env.resource, prm["resource"])
		assert.Equal(t, []interface{}{env.iss.URL}, prm["authorization_servers"])
		assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	})

	tok := env.iss.Sign("es", env.iss.Claims(env.resource))
	t.Run("valid token reaches the backend with identity and without Authorization", func(t *testing.T) {
		resp, body := untilNot503(t, http.MethodPost, env.url("/everything/mcp"), map[string]string{
			"Authorization": "Bearer " + tok, "X-User-Id": "spoofed", "X-User-Name": "admin",
		})
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var got http.Header
		require.NoError(t, json.Unmarshal(body, &got))
		assert.Equal(t, []string{"1234567"}, got.Values("X-User-Id"))
		assert.Equal(t, []string{"octocat"}, got.Values("X-User-Name"))
		assert.Equal(t, "client-abc", got.Get("X-Client-Id"))
		assert.Empty(t, got.Values("Authorization"))
	})

	t.Run("a configuration reload keeps keys and cache", func(t *testing.T) {
		fetches := env.iss.JWKSFetches()
		routers := env.dynamic["http"].(map[string]interface{})["routers"].(map[string]interface{})
		routers["reloaded"] = map[string]interface{}{"rule": "PathPrefix(`/reloaded`)", "entryPoints": []string{"web"}, "service": "backend"}
		b, err := json.Marshal(env.dynamic)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(env.dir, "dynamic.yml"), b, 0o644))
		// Traefik rebuilds every router and middleware when the file changes; the new router shows it happened.
		require.Eventually(t, func() bool {
			resp, _ := send(t, http.MethodGet, env.url("/reloaded"), nil)
			return resp.StatusCode == http.StatusOK
		}, 30*time.Second, 50*time.Millisecond)
		resp, body := send(t, http.MethodPost, env.url("/everything/mcp"), map[string]string{"Authorization": "Bearer " + tok})
		assert.Equal(t, http.StatusOK, resp.StatusCode, "no 503 after a reload: %s", body)
		assert.Equal(t, fetches, env.iss.JWKSFetches(), "a reload must not fetch the JWKS again")
	})

	t.Run("token for another resource is refused", func(t *testing.T) {
		other := env.iss.Claims(fmt.Sprintf("http://127.0.0.1:%d/memory/mcp", env.port))
		resp, _ := send(t, http.MethodPost, env.url("/everything/mcp"), map[string]string{"Authorization": "Bearer " + env.iss.Sign("es", other)})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "audience")
	})

	t.Run("revoked token is refused within 10 s", func(t *testing.T) {
		c := env.iss.Claims(env.resource)
		revoked := env.iss.Sign("es", c)
		hdr := map[string]string{"Authorization": "Bearer " + revoked}
		resp, _ := send(t, http.MethodPost, env.url("/everything/mcp"), hdr)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		env.iss.Revoke(c["jti"].(string), c["exp"].(int64))
		require.Eventually(t, func() bool {
			resp, _ := send(t, http.MethodPost, env.url("/everything/mcp"), hdr)
			return resp.StatusCode == http.StatusUnauthorized
		}, 10*time.Second, 100*time.Millisecond)
	})

	t.Run("testData yields a working middleware that answers 503 until its keys arrive", func(t *testing.T) {
		resp, _ := send(t, http.MethodGet, env.url("/testdata"), nil)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, `Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp"`,
			resp.Header.Get("WWW-Authenticate"))
		resp, _ = send(t, http.MethodGet, env.url("/testdata"), map[string]string{"Authorization": "Bearer " + tok})
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	})
}

var reqPerSec = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrkRate runs wrk -t2 -c16 against u and returns requests per second.
func wrkRate(b *testing.B, wrk, u, duration string, hdr ...string) float64 {
	args := []string{"-t2", "-c16", "-d" + duration}
	for _, h := range hdr {
		args = append(args, "-H", h)
	}
	out, err := exec.Command(wrk, append(args, u)...).CombinedOutput()
	require.NoError(b, err, string(out))
	m := reqPerSec.FindStringSubmatch(string(out))
	require.NotNil(b, m, string(out))
	require.NotContains(b, string(out), "Non-2xx", "wrk saw errors:\n%s", out)
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(b, err)
	return v
}

// BenchmarkTraefik measures throughput through the real Traefik with wrk: the same backend with no middleware and
// behind the plugin with a warm cache, in one run. Run it alone: go test -run XXX -bench Traefik -benchtime 1x
// ./plugin (WRK_DURATION sets each wrk run, default 10s; WRK_ROUNDS alternates that many rounds; WRK_REFERENCES=1 adds a do-nothing Yaegi plugin and Traefik's compiled
// headers middleware as references).
func BenchmarkTraefik(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		testenv.Missing(b, "wrk", "apt-get install wrk")
	}
	d := os.Getenv("WRK_DURATION")
	if d == "" {
		d = "10s"
	}
	env := startTraefik(b)
	tok := env.iss.Sign("es", env.iss.Claims(env.resource), func(tk *jwt.Token) {})
	resp, _ := untilNot503(b, http.MethodGet, env.url("/everything/mcp"), map[string]string{"Authorization": "Bearer " + tok})
	require.Equal(b, http.StatusOK, resp.StatusCode)
	rounds, _ := strconv.Atoi(os.Getenv("WRK_ROUNDS"))
	if rounds < 1 {
		rounds = 1
	}
	wrkRate(b, wrk, env.url("/noauth"), "2s", "X-Bench: 1") // warm-up
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate the runs, since the machine is shared and its load drifts. All send the same request.
		var plain, noop, native, auth float64
		hdr := []string{"Authorization: Bearer " + tok, "X-Bench: 1"}
		for r := 0; r < rounds; r++ {
			plain += wrkRate(b, wrk, env.url("/noauth"), d, hdr...)
			auth += wrkRate(b, wrk, env.url("/everything/mcp"), d, hdr...)
			if os.Getenv("WRK_REFERENCES") != "" {
				noop += wrkRate(b, wrk, env.url("/noop"), d, hdr...)
				native += wrkRate(b, wrk, env.url("/native"), d, hdr...)
			}
		}
		n := float64(rounds)
		b.ReportMetric(plain/n, "noauth-req/s")
		b.ReportMetric(auth/n, "plugin-req/s")
		if noop > 0 {
			b.ReportMetric(noop/n, "noop-plugin-req/s")
			b.ReportMetric(native/n, "native-headers-req/s")
		}
		b.ReportMetric(auth/plain, "ratio")
	}
}
