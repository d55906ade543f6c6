package kubernetes

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// valueSets are the installs the chart is checked with: each layout, each kind of Redis, one and several replicas.
var valueSets = []struct {
	name, release, values string
	kinds                 map[string]int // how many objects of each kind the install makes
}{
	{"try it out", "gw", `
redis: {enabled: true}
authserver: {github: {clientId: Iv1.abc, allowedUsers: [alice]}, existingSecret: gw-github}
traefik: {tls: {certResolver: letsencrypt}}
servers:
  - name: everything
    command: [mcp-server-everything]
`, map[string]int{"Deployment": 2, "StatefulSet": 1, "Service": 3, "PodDisruptionBudget": 2, "NetworkPolicy": 3,
		"Secret": 2, "Middleware": 5, "IngressRoute": 2}},
	{"subdomain on Sentinel", "prod", `
layout: subdomain
domain: mcp.example.com
authserver:
  replicas: 3
  scopes: [mcp, everything:admin]
  scopeDescriptions: {"everything:admin": "read the environment of the everything server"}
  groups: [admins]
  redis: {url: "redis://sentinel.redis.svc:26379/0?master_name=mymaster"}
  existingSecret: prod-authserver
  env: {AUTHSERVER_OIDC_PROVIDERS: okta, AUTHSERVER_OIDC_OKTA_ISSUER: "https://example.okta.com"}
traefik: {tls: {secretName: mcp-example-com}, namespace: ingress, podSelector: {app: traefik}}
networkPolicies: {metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]}
servers:
  - name: everything
    command: [mcp-server-everything]
    replicas: 3
    persistence: {enabled: false}
    scopesSupported: [mcp, everything:admin]
    policy: |
      rules:
        - {tool: get-env, allow: {scopes: [everything:admin]}}
  - name: memory
    command: [mcp-server-memory]
    env: {MEMORY_FILE_PATH: "/data/users/{user}/memory.json"}
    persistence: {size: 5Gi, storageClassName: fast}
`, map[string]int{"Deployment": 1, "StatefulSet": 2, "Service": 3, "PodDisruptionBudget": 3, "NetworkPolicy": 3,
		"Secret": 1, "Middleware": 5, "IngressRoute": 3, "ConfigMap": 1}},
	{"one of each on Redis Cluster, long names", "team-platform-production", `
authserver:
  replicas: 1
  redis: {addrs: ["redis-0.redis:6379", "redis-1.redis:6379", "redis-2.redis:6379"], cluster: true, tls: true}
  existingSecret: solo-authserver
networkPolicies: {enabled: false}
serverDefaults: {replicas: 1, persistence: {enabled: false}}
servers:
  - name: sequential-thinking
    command: [mcp-server-sequential-thinking]
    image: {repository: registry.example.com/mcp/thinking, tag: "1.0"}
`, map[string]int{"Deployment": 1, "StatefulSet": 1, "Service": 2, "Secret": 1, "Middleware": 5, "IngressRoute": 2}},
}

func parseValues(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(s), &v))
	return v
}

// TestChartAtTheAPIServer applies every object of each install to a real API server with server-side dry-run, in a
// namespace that enforces the restricted Pod Security profile: schema, defaulting, validation and admission are the
// cluster's own, Traefik's CRDs included. Any warning fails (PodSecurity warns of a workload whose pods it would refuse).
func TestChartAtTheAPIServer(t *testing.T) {
	c := startCluster(t, "127.0.0.1")
	a := newApplier(t, c)
	installTraefikCRDs(t, a)
	createNamespace(t, a, "gateway")
	c.warn.take()
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs, err := render(t, vs.release, "gateway", parseValues(t, vs.values), c.Config)
			require.NoError(t, err)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				_, err := a.apply(context.Background(), o, "gateway", true)
				require.NoError(t, err, "%s %s", o.GetKind(), o.GetName())
				assert.Empty(t, c.warn.take(), "%s %s", o.GetKind(), o.GetName())
				if o.GetKind() == "StatefulSet" {
					// Its pods are labelled with its name, "-" and a 10-character revision hash: 63 at most.
					assert.LessOrEqual(t, len(o.GetName()), 52, o.GetName())
				}
			}
			assert.Equal(t, vs.kinds, kinds)
			if vs.release == "prod" {
				// A server's own persistence.enabled: false wins over the default's true.
				_, claims, _ := unstructured.NestedSlice(objectNamed(t, objs, "StatefulSet", "prod-mcp-oauth-gateway-mcp-everything").Object, "spec", "volumeClaimTemplates")
				assert.False(t, claims, "everything has no volume claims")
				_, claims, _ = unstructured.NestedSlice(objectNamed(t, objs, "StatefulSet", "prod-mcp-oauth-gateway-mcp-memory").Object, "spec", "volumeClaimTemplates")
				assert.True(t, claims, "memory has volume claims")
			}
		})
	}
}

// TestChartRefusesWrongValues: a wrong value fails at install, with a message naming it, before anything is applied.
func TestChartRefusesWrongValues(t *testing.T) {
	for _, tc := range []struct{ name, values, want string }{
		{"unknown layout", "layout: mesh\nredis: {enabled: true}", "layout"},
		{"server name not a DNS label", "redis: {enabled: true}\nservers: [{name: Every_Thing, command: [x]}]", "name"},
		{"server without a command", "redis: {enabled: true}\nservers: [{name: everything}]", "command"},
		{"no replicas", "redis: {enabled: true}\nauthserver: {replicas: 0}", "replicas"},
		{"misspelt key", "redis: {enabled: true}\nauthserver: {replica: 2}", "replica"},
		{"issuer with a path", "redis: {enabled: true}\ndomain: gw.example.com/x", "domain"},
		{"redis URL of another scheme", "authserver: {redis: {url: http://redis:6379}}", "url"},
		{"no store", "servers: []", "share one Redis"},
		{"a Secret that may not hold REDIS_URL", "authserver: {existingSecret: gw-authserver}", "share one Redis"},
		{"REDIS_URL from no Secret", "authserver: {redis: {fromSecret: true}}", "existingSecret"},
		{"two stores", "redis: {enabled: true}\nauthserver: {redis: {url: redis://r:6379}}", "redis.enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, "gw", "gateway", parseValues(t, tc.values), nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			t.Log(err)
		})
	}
}

// objectNamed finds one rendered object.
func objectNamed(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	var have []string
	for _, o := range objs {
		have = append(have, o.GetKind()+"/"+o.GetName())
	}
	t.Fatalf("no %s %s among %s", kind, name, strings.Join(have, ", "))
	return nil
}

// TestHelmLint runs `helm lint` (Helm's own linter, as a library) on the chart with each install's values: no warning
// and no error (an INFO, such as the icon the project does not have, is only logged).
func TestHelmLint(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "deploy", "helm", "mcp-oauth-gateway")
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			l := lint.RunAll(dir, parseValues(t, vs.values), "gateway")
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("%v", m)
				} else {
					t.Log(m)
				}
			}
		})
	}
}
