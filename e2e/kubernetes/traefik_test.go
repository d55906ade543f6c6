package kubernetes

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/localplugin"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/netns"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The install the end-to-end test runs, in each layout on localhost (the client resolves *.localhost to loopback):
// two authserver replicas on one Redis, two streamproxy replicas of server-everything.
const edgeValues = `
layout: %s
domain: localhost
scheme: http
port: "%d"
traefik: {entryPoints: [web]}
authserver:
  github: {clientId: fake-github-client-id, allowedUsers: [dev-user]}
  existingSecret: gw-github
  redis: {url: "redis://127.0.0.1:%d/0"}
  env: {AUTHSERVER_GITHUB_WEB_URL: "http://127.0.0.1:%d/", AUTHSERVER_GITHUB_API_URL: "http://127.0.0.1:%d/api/v3/"}
serverDefaults: {persistence: {enabled: false}}
servers:
  - name: everything
    command: [mcp-server-everything]
`

// TestTraefikRoutesTheChart runs Traefik with its Kubernetes CRD provider against a real API server holding the
// chart's objects. The pods are processes on addresses of a network namespace, started from the chart's own
// Deployment and StatefulSet (their environment, arguments and Secrets), published to Traefik through EndpointSlices
// of the chart's Services. An OAuth client gets from a 401 to a tool call through that Traefik; then the replicas:
// a user's requests land on one streamproxy whichever replica Traefik picks, a refresh on one authserver and a
// revocation on the other both reach the edge.
func TestTraefikRoutesTheChart(t *testing.T) {
	for _, l := range []edgeLayout{
		{name: "path", authHost: "localhost", mcpHost: "localhost", mcpPath: "/everything/mcp"},
		{name: "subdomain", authHost: "auth.localhost", mcpHost: "everything.localhost", mcpPath: "/mcp"},
	} {
		t.Run(l.name, func(t *testing.T) { testEdge(t, l) })
	}
}

// edgeLayout is where a layout puts the authserver and the MCP server.
type edgeLayout struct{ name, authHost, mcpHost, mcpPath string }

func testEdge(t *testing.T, l edgeLayout) {
	traefik := testenv.TraefikBin(t)
	nm := testenv.NodeModules(t)
	node := testenv.NodeBin(t)
	authserverBin := testenv.BuildBinary(t, "./authserver")
	streamproxyBin := testenv.BuildBinary(t, "./streamproxy")
	fakegithubBin := testenv.BuildBinary(t, "./cmd/fakegithub")
	pods := netns.New(t, "gwk8s")
	c := startCluster(t, pods.HostIP)
	a := newApplier(t, c)
	installTraefikCRDs(t, a)
	const ns = "gateway"
	createNamespace(t, a, ns)
	ctx := context.Background()

	// Ports inside the namespace: nothing else listens there.
	const port, redisPort, githubPort = 8000, 6379, 7000
	values := parseValues(t, fmt.Sprintf(edgeValues, l.name, port, redisPort, githubPort, githubPort))
	githubSecret := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "gw-github"}, "stringData": map[string]any{"GITHUB_CLIENT_SECRET": "fake-github-client-secret"}}}
	_, err := a.apply(ctx, githubSecret, ns, false)
	require.NoError(t, err)
	objs, err := render(t, "gw", ns, values, c.Config)
	require.NoError(t, err)
	for _, o := range objs {
		_, err := a.apply(ctx, o, ns, false)
		require.NoError(t, err, "%s %s", o.GetKind(), o.GetName())
	}
	// An upgrade renders the chart again: the secret between Traefik and streamproxy stays what it was.
	again, err := render(t, "gw", ns, values, c.Config)
	require.NoError(t, err)
	assert.Equal(t, objectNamed(t, objs, "Secret", "gw-mcp-oauth-gateway-streamproxy").Object["data"],
		objectNamed(t, again, "Secret", "gw-mcp-oauth-gateway-streamproxy").Object["data"])
	secrets := map[string]map[string]string{"gw-github": {"GITHUB_CLIENT_SECRET": "fake-github-client-secret"}}
	for _, o := range objs {
		if o.GetKind() == "Secret" {
			secrets[o.GetName()] = secretData(t, o)
		}
	}

	// The pods, on addresses of their own, and the cluster DNS names the chart's URLs use.
	authIPs := []string{pods.AddAddr(t, 10), pods.AddAddr(t, 11)}
	mcpIPs := []string{pods.AddAddr(t, 20), pods.AddAddr(t, 21)}
	const authSvc, mcpSvc = "gw-mcp-oauth-gateway-authserver", "gw-mcp-oauth-gateway-mcp-everything"
	pods.SetHosts(t, map[string][]string{
		// A Service's name resolves to one of its pods here (no kube-proxy): the plugin fetches keys and the feed there.
		authIPs[0]: {authSvc + "." + ns + ".svc", authSvc + "." + ns + ".svc.cluster.local"},
		mcpIPs[0]:  {mcpSvc + "-0." + mcpSvc, mcpSvc + "-0." + mcpSvc + "." + ns + ".svc.cluster.local"},
		mcpIPs[1]:  {mcpSvc + "-1." + mcpSvc, mcpSvc + "-1." + mcpSvc + "." + ns + ".svc.cluster.local"},
	})
	publishEndpoints(t, a, ns, authSvc, authIPs, map[string]int{"http": 9000, "feed": 9001, "metrics": 9090}, nil)
	publishEndpoints(t, a, ns, mcpSvc, mcpIPs, map[string]int{"http": 8080, "metrics": 9090},
		[]string{mcpSvc + "-0", mcpSvc + "-1"})

	start := func(name string, cmd *exec.Cmd, ready string) *testenv.Process {
		p := testenv.Start(t, name, cmd)
		p.WaitLine(t, ready, 60*time.Second)
		return p
	}
	start("redis", pods.Command("redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no"), "Ready to accept connections")
	start("fakegithub", pods.Command(fakegithubBin, "-listen", fmt.Sprintf("127.0.0.1:%d", githubPort),
		"-callback-url", fmt.Sprintf("http://%s:%d/github/callback", l.authHost, port)), "fake GitHub listening")

	// The authserver replicas: the Deployment's container, each on its pod's address.
	dep := objectNamed(t, objs, "Deployment", authSvc)
	authEnv := containerEnv(t, dep, "", secrets)
	for i, ip := range authIPs {
		cmd := pods.Command(authserverBin)
		cmd.Env = append(append(os.Environ(), authEnv...), "AUTHSERVER_LISTEN="+ip+":9000",
			"AUTHSERVER_FEED_LISTEN="+ip+":9001", "AUTHSERVER_METRICS_LISTEN="+ip+":9090")
		start(fmt.Sprintf("authserver-%d", i), cmd, "authserver listening")
	}
	// The streamproxy replicas: the StatefulSet's container, each named as its pod; the image's entry point is
	// `streamproxy --log-format json` and its mcp-server-everything the npm package's.
	sts := objectNamed(t, objs, "StatefulSet", mcpSvc)
	everything := filepath.Join(nm, "@modelcontextprotocol", "server-everything", "dist", "index.js")
	for i, ip := range mcpIPs {
		pod := fmt.Sprintf("%s-%d", mcpSvc, i)
		var args []string
		for _, arg := range containerArgs(t, sts) {
			arg = strings.ReplaceAll(arg, "$(POD_NAME)", pod)
			switch arg {
			case "--listen=:8080":
				arg = "--listen=" + ip + ":8080"
			case "--metrics-listen=:9090":
				arg = "--metrics-listen=" + ip + ":9090"
			}
			args = append(args, arg)
		}
		require.Equal(t, "mcp-server-everything", args[len(args)-1])
		args = append(append([]string{"--log-format", "json"}, args[:len(args)-1]...), node, everything)
		cmd := pods.Command(streamproxyBin, args...)
		cmd.Env = append(os.Environ(), containerEnv(t, sts, pod, secrets)...)
		start(pod, cmd, "streamproxy listening")
	}

	// Traefik, in the namespace too (it looks the Services' names up as the plugin's URLs give them), reading the
	// chart's IngressRoutes and Middlewares from the API server.
	dir := t.TempDir()
	static, err := localplugin.Setup(dir, localplugin.Static{
		Address: fmt.Sprintf(":%d", port), LogLevel: "INFO",
		Plugins: []localplugin.Plugin{localplugin.Gateway(testenv.RepoRoot(t))},
		Extra: map[string]any{"providers": map[string]any{"kubernetesCRD": map[string]any{
			"endpoint": c.URL, "token": c.Token, "certAuthFilePath": c.CAFile, "namespaces": []string{ns},
		}}, "accessLog": map[string]any{"format": "json"}},
	})
	require.NoError(t, err)
	tr := pods.Command(traefik, "--configFile="+static)
	tr.Dir = dir
	edge := testenv.Start(t, "traefik", tr)

	// Traefik serves the chart's routes once its provider has read them and the plugin has compiled.
	base := fmt.Sprintf("http://%s:%d", pods.IP(2), port)
	// try sends an MCP initialize (or a GET) to Traefik for host; get is try where Traefik must answer.
	try := func(method, host, path, token string) (*http.Response, error) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"k8s","version":"1"}}}`))
		require.NoError(t, err)
		req.Host = fmt.Sprintf("%s:%d", host, port)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return resp, nil
	}
	get := func(method, host, path, token string) *http.Response {
		resp, err := try(method, host, path, token)
		require.NoError(t, err)
		return resp
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := try(http.MethodGet, l.mcpHost, "/.well-known/oauth-protected-resource"+l.mcpPath, "")
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Traefik did not serve the chart's routes within 90 s\n%s", edge.Output())
		}
		time.Sleep(250 * time.Millisecond)
	}
	resp := get(http.MethodPost, l.mcpHost, l.mcpPath, "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"),
		fmt.Sprintf(`resource_metadata="http://%s:%d/.well-known/oauth-protected-resource%s"`, l.mcpHost, port, l.mcpPath))
	// The feed is not on the public origin.
	assert.Equal(t, http.StatusForbidden, get(http.MethodGet, l.authHost, "/revocations", "").StatusCode)

	// A real OAuth client, from the 401 to a tool call (and a refresh), inside the namespace where localhost is
	// Traefik's.
	run := runClient(t, pods, node, fmt.Sprintf("http://%s:%d%s", l.mcpHost, port, l.mcpPath))
	assert.Contains(t, run.Result.Content[0].Text, "hello through the gateway")
	assert.True(t, run.Refreshed)

	// Affinity: Traefik balances over both replicas; each user's sessions and worker live on one.
	for range 6 {
		require.Equal(t, http.StatusOK, get(http.MethodPost, l.mcpHost, l.mcpPath, run.Tokens.AccessToken).StatusCode)
	}
	served, holding := 0, 0
	for _, ip := range mcpIPs {
		if requestsServed(t, ip) > 0 {
			served++
		}
		if h := health(t, ip); h.Sessions+h.Workers > 0 {
			holding++
		}
	}
	assert.Equal(t, 2, served, "Traefik sends requests to both replicas")
	assert.Equal(t, 1, holding, "one replica holds the user's sessions")

	// A refresh on one authserver replica, a revocation on the other: both reach the edge.
	refreshed := tokenRequest(t, authIPs[0], url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {run.Tokens.RefreshToken}, "client_id": {run.ClientID}})
	require.Equal(t, http.StatusOK, get(http.MethodPost, l.mcpHost, l.mcpPath, refreshed.AccessToken).StatusCode)
	revoke, err := http.PostForm(fmt.Sprintf("http://%s:9000/revoke", authIPs[1]),
		url.Values{"token": {refreshed.RefreshToken}, "client_id": {run.ClientID}})
	require.NoError(t, err)
	revoke.Body.Close()
	require.Equal(t, http.StatusOK, revoke.StatusCode)
	deadline = time.Now().Add(60 * time.Second)
	for get(http.MethodPost, l.mcpHost, l.mcpPath, refreshed.AccessToken).StatusCode != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatalf("the revocation did not reach the edge within 60 s\n%s", edge.Output())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// publishEndpoints does what the EndpointSlice controller would for a Service whose pods run at ips: one slice,
// ready endpoints, the Service's port names.
func publishEndpoints(t *testing.T, a *applier, ns, service string, ips []string, ports map[string]int, hostnames []string) {
	t.Helper()
	var eps []any
	for i, ip := range ips {
		ep := map[string]any{"addresses": []any{ip}, "conditions": map[string]any{"ready": true, "serving": true}}
		if hostnames != nil {
			ep["hostname"] = hostnames[i]
		}
		eps = append(eps, ep)
	}
	var ps []any
	for name, p := range ports {
		ps = append(ps, map[string]any{"name": name, "port": int64(p), "protocol": "TCP"})
	}
	slice := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
		"metadata":    map[string]any{"name": service + "-test", "labels": map[string]any{"kubernetes.io/service-name": service}},
		"addressType": "IPv4", "endpoints": eps, "ports": ps}}
	_, err := a.apply(context.Background(), slice, ns, false)
	require.NoError(t, err, "EndpointSlice of %s", service)
}

// secretData is a rendered Secret's values.
func secretData(t *testing.T, s *unstructured.Unstructured) map[string]string {
	t.Helper()
	out := map[string]string{}
	data, _, _ := unstructured.NestedStringMap(s.Object, "data")
	for k, v := range data {
		b, err := base64.StdEncoding.DecodeString(v)
		require.NoError(t, err)
		out[k] = string(b)
	}
	return out
}

// container is the first container of a workload's pod template.
func container(t *testing.T, w *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(w.Object, "spec", "template", "spec", "containers")
	require.NotEmpty(t, cs)
	return cs[0].(map[string]any)
}

func containerArgs(t *testing.T, w *unstructured.Unstructured) []string {
	t.Helper()
	args, _, _ := unstructured.NestedStringSlice(container(t, w), "args")
	return args
}

// containerEnv is the environment the kubelet would give the container: values, Secrets' keys, the pod's name.
func containerEnv(t *testing.T, w *unstructured.Unstructured, pod string, secrets map[string]map[string]string) []string {
	t.Helper()
	c := container(t, w)
	var env []string
	from, _, _ := unstructured.NestedSlice(c, "envFrom")
	for _, f := range from {
		name, _, _ := unstructured.NestedString(f.(map[string]any), "secretRef", "name")
		require.Contains(t, secrets, name)
		for k, v := range secrets[name] {
			env = append(env, k+"="+v)
		}
	}
	list, _, _ := unstructured.NestedSlice(c, "env")
	for _, e := range list {
		m := e.(map[string]any)
		name := m["name"].(string)
		switch {
		case m["value"] != nil:
			env = append(env, name+"="+m["value"].(string))
		case m["valueFrom"] != nil:
			if field, ok, _ := unstructured.NestedString(m, "valueFrom", "fieldRef", "fieldPath"); ok {
				require.Equal(t, "metadata.name", field)
				env = append(env, name+"="+pod)
				continue
			}
			secret, _, _ := unstructured.NestedString(m, "valueFrom", "secretKeyRef", "name")
			key, _, _ := unstructured.NestedString(m, "valueFrom", "secretKeyRef", "key")
			v, ok := secrets[secret][key]
			require.True(t, ok, "%s: no key %s in Secret %s", name, key, secret)
			env = append(env, name+"="+v)
		}
	}
	return env
}

// clientRun is what testdata/node/e2e-client.mjs reports.
type clientRun struct {
	Result struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"result"`
	Refreshed bool   `json:"refreshed"`
	ClientID  string `json:"clientId"`
	Tokens    struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	} `json:"tokens"`
}

// runClient runs the TypeScript SDK's OAuth client inside the namespace.
func runClient(t *testing.T, pods *netns.Network, node, mcpURL string) clientRun {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "node")
	cmd := pods.Command(node, "--import", filepath.Join(dir, "localhost-resolver.mjs"), filepath.Join(dir, "e2e-client.mjs"), mcpURL)
	out, err := cmd.Output()
	var stderr []byte
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	require.NoError(t, err, "client failed:\n%s\n%s", out, stderr)
	var r clientRun
	require.NoError(t, json.Unmarshal(out, &r), "%s", out)
	require.NotEmpty(t, r.Result.Content, "%s", out)
	return r
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// tokenRequest posts to one authserver replica's token endpoint directly.
func tokenRequest(t *testing.T, ip string, form url.Values) tokens {
	t.Helper()
	resp, err := http.PostForm(fmt.Sprintf("http://%s:9000/token", ip), form)
	require.NoError(t, err)
	defer resp.Body.Close()
	var tk tokens
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tk))
	return tk
}

type replicaHealth struct {
	Sessions int `json:"sessions"`
	Workers  int `json:"workers"`
}

func health(t *testing.T, ip string) replicaHealth {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s:8080/health", ip))
	require.NoError(t, err)
	defer resp.Body.Close()
	var h replicaHealth
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
	return h
}

var requestsLine = regexp.MustCompile(`(?m)^streamproxy_http_requests_total\{[^}]*\} ([0-9.e+]+)$`)

// requestsServed is how many HTTP requests a streamproxy replica has answered (its metrics).
func requestsServed(t *testing.T, ip string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s:9090/metrics", ip))
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	var n float64
	for _, m := range requestsLine.FindAllStringSubmatch(b.String(), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		n += v
	}
	return n
}
