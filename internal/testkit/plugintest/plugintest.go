// Package plugintest holds the plugin's tests that every mode runs: compiled, from plugin/, and interpreted by Yaegi
// the way Traefik runs it, from the nested module plugin/yaegitest. Yaegi lives in that module of its own because the
// Traefik Plugin Catalog refuses a plugin whose root go.mod requires it; these tests are an ordinary package, not
// _test files, so that both modules can import them.
package plugintest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mitchellh/mapstructure"
	"github.com/stretchr/testify/require"
)

const (
	// Resource is the protected MCP endpoint of the shared tests.
	Resource = "http://mcp.test/everything/mcp"
	prmURL   = "http://mcp.test/.well-known/oauth-protected-resource/everything/mcp"
	mcpPath  = "/everything/mcp"
)

// BuildFunc builds the middleware from a Traefik-style dynamic configuration (the map Traefik hands to plugins).
type BuildFunc func(t testing.TB, cfg map[string]interface{}, next http.Handler) (http.Handler, error)

// Mode is one way of running the middleware.
type Mode struct {
	Name  string
	Build BuildFunc
	// StopAll ends the refresh loops of every issuer the mode's middlewares started, so finished tests leave no
	// pollers behind.
	StopAll func()
}

// DecodeLikeTraefik fills config from a dynamic-configuration map exactly as Traefik 3.6's plugin loader does
// (pkg/plugins/middlewareyaegi.go, createConfig).
func DecodeLikeTraefik(config interface{}, m map[string]interface{}) error {
	if len(m) == 0 {
		return nil
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.StringToSliceHookFunc(","),
		WeaklyTypedInput: true,
		Result:           config,
	})
	if err != nil {
		return err
	}
	return dec.Decode(m)
}

// tests are the tests every mode runs; Run runs each as a subtest of the same name.
var tests = []struct {
	name string
	run  func(t *testing.T, f *Fixture)
}{
	{"Behaviour", behaviour},
	{"KeyRotation", keyRotation},
	{"UnknownKidFloodIsRateLimited", unknownKidFloodIsRateLimited},
	{"RevocationFeed", revocationFeed},
	{"RevocationFeedRestartsWhenCursorGoesBack", revocationFeedRestartsWhenCursorGoesBack},
	{"RevocationFeedPages", revocationFeedPages},
	{"RevocationFeedMaxLag", revocationFeedMaxLag},
	{"UnavailableUntilKeysLoad", unavailableUntilKeysLoad},
	{"ReloadSharesKeysAndCache", reloadSharesKeysAndCache},
	{"ConfiguredEndpointsSkipDiscovery", configuredEndpointsSkipDiscovery},
	{"DiscoveryRefusesForeignIssuerMetadata", discoveryRefusesForeignIssuerMetadata},
	{"ConfigErrors", configErrors},
	{"ConfigDecoding", configDecoding},
}

// Run runs every shared test against the middleware built in mode, each with a fresh issuer.
func Run(t *testing.T, mode Mode) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(mode.StopAll)
			tc.run(t, NewFixture(t, mode.Build))
		})
	}
}

// Fixture is one issuer with an ES256 key ("es") and an RSA key ("rsa"), and the mode's way to build a middleware.
type Fixture struct {
	t     *testing.T
	Iss   *Issuer
	build BuildFunc
}

// NewFixture starts the fixture's issuer.
func NewFixture(t *testing.T, build BuildFunc) *Fixture {
	iss := NewIssuer(t)
	iss.AddES256("es")
	iss.addKey("rsa", rsaKey(t))
	return &Fixture{t: t, Iss: iss, build: build}
}

// Config is the middleware configuration for the fixture's issuer and Resource, with extra on top.
func (f *Fixture) Config(extra map[string]interface{}) map[string]interface{} {
	return config(f.Iss.URL, extra)
}

func config(issuer string, extra map[string]interface{}) map[string]interface{} {
	cfg := map[string]interface{}{
		"issuer":                 issuer,
		"resource":               Resource,
		"resourceName":           "Everything",
		"revocationPollInterval": "100ms",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

// Handler builds a middleware and waits until it has its keys (503 before).
func (f *Fixture) Handler(extra map[string]interface{}) (http.Handler, *Backend) {
	f.t.Helper()
	be := &Backend{}
	h, err := f.build(f.t, f.Config(extra), be)
	require.NoError(f.t, err)
	tok := f.Iss.Sign("es", f.Iss.Claims(Resource))
	require.Eventually(f.t, func() bool {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "http://mcp.test"+mcpPath, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(rec, req)
		return rec.Code != http.StatusServiceUnavailable
	}, 10*time.Second, 10*time.Millisecond, "keys never loaded")
	return h, be
}

func do(h http.Handler, method, path string, hdr map[string][]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://mcp.test"+path, nil)
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func bearer(tok string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + tok}}
}

// Status sends a POST to the MCP endpoint with tok as the bearer token and returns the status and the challenge.
func Status(h http.Handler, tok string) (int, string) {
	rec := do(h, http.MethodPost, mcpPath, bearer(tok))
	return rec.Code, rec.Header().Get("WWW-Authenticate")
}
