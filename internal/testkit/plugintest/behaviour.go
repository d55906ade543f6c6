package plugintest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawToken builds a JWS from raw header and claims JSON with a junk signature, for parser-level rejections.
func rawToken(header, claims string) string {
	e := base64.RawURLEncoding.EncodeToString
	return e([]byte(header)) + "." + e([]byte(claims)) + "." + e([]byte("not-a-signature-not-a-signature!"))
}

type behaviourCase struct {
	name    string
	extra   map[string]interface{} // configuration on top of the Fixture's
	method  string
	path    string
	headers func(f *Fixture) map[string][]string
	status  int
	check   func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend)
}

// invalidToken checks a 401 invalid_token answer whose description mentions want.
func invalidToken(want string) func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
	return func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
		ch := rec.Header().Get("WWW-Authenticate")
		assert.True(t, strings.HasPrefix(ch, `Bearer error="invalid_token", error_description="`), ch)
		assert.Contains(t, ch, want)
		assert.Contains(t, ch, `resource_metadata="`+prmURL+`"`)
		assert.Equal(t, "WWW-Authenticate", rec.Header().Get("Access-Control-Expose-Headers"))
		var body map[string]string
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		assert.Equal(t, "invalid_token", body["error"])
		calls, _ := be.Seen()
		assert.Zero(t, calls, "the backend must not be reached")
	}
}

func withClaims(f *Fixture, kid string, edit func(jwt.MapClaims)) map[string][]string {
	c := f.Iss.Claims(Resource)
	edit(c)
	return bearer(f.Iss.Sign(kid, c))
}

var behaviourCases = []behaviourCase{
	{
		name: "a request without an id gets one, on the refusal too", status: 401,
		headers: func(f *Fixture) map[string][]string { return nil },
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			assert.Regexp(t, `^[0-9a-f]{12}-[0-9a-z]+$`, rec.Header().Get("X-Request-Id"))
		},
	},
	{
		name: "the client's request id reaches the backend", status: 200,
		headers: func(f *Fixture) map[string][]string {
			h := bearer(f.Iss.Sign("es", f.Iss.Claims(Resource)))
			h["X-Request-Id"] = []string{"client-id-42"}
			return h
		},
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			_, h := be.Seen()
			assert.Equal(t, []string{"client-id-42"}, h.Values("X-Request-Id"))
			assert.Empty(t, rec.Header().Values("X-Request-Id"), "the backend's answer carries the id, not the plugin")
		},
	},
	{
		name: "a refusal carries the client's request id", status: 401,
		headers: func(f *Fixture) map[string][]string { return map[string][]string{"X-Request-Id": {"client-id-7"}} },
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			assert.Equal(t, []string{"client-id-7"}, rec.Header().Values("X-Request-Id"))
		},
	},
	{
		name: "no token gets the bare challenge", status: 401,
		headers: func(f *Fixture) map[string][]string { return nil },
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			assert.Equal(t, []string{`Bearer resource_metadata="` + prmURL + `", scope="mcp"`}, rec.Header().Values("WWW-Authenticate"))
			assert.Equal(t, "WWW-Authenticate", rec.Header().Get("Access-Control-Expose-Headers"))
			calls, _ := be.Seen()
			assert.Zero(t, calls)
		},
	},
	{
		name: "valid ES256 token passes with identity headers and no Authorization", status: 200,
		headers: func(f *Fixture) map[string][]string { return bearer(f.Iss.Sign("es", f.Iss.Claims(Resource))) },
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			_, h := be.Seen()
			assert.Equal(t, "1234567", h.Get("X-User-Id"))
			assert.Equal(t, "octocat", h.Get("X-User-Name"))
			assert.Equal(t, "octocat@example.com", h.Get("X-User-Email"))
			assert.Equal(t, "client-abc", h.Get("X-Client-Id"))
			assert.Equal(t, "mcp", h.Get("X-Scopes"))
			assert.Equal(t, prmURL, h.Get("X-Resource-Metadata"), "the metadata URL the challenges name")
			assert.Empty(t, h.Values("X-User-Groups"), "a token without groups leaves no groups header")
			assert.Empty(t, h.Values("Authorization"))
			assert.Equal(t, "backend", rec.Body.String())
		},
	},
	{
		name: "the groups claim reaches the backend comma separated", status: 200,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["groups"] = []string{"acme", "acme/platform"} })
		},
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			_, h := be.Seen()
			assert.Equal(t, []string{"acme,acme/platform"}, h.Values("X-User-Groups"))
		},
	},
	{
		name: "a group name holding a comma is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["groups"] = []string{"acme", "admins,staff"} })
		},
		check: invalidToken("groups claim is not a list of names without commas or whitespace"),
	},
	{
		name: "a groups claim that is not a list is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["groups"] = "admins" })
		},
		check: invalidToken("groups claim"),
	},
	{
		name: "valid RS256 token passes", status: 200,
		headers: func(f *Fixture) map[string][]string { return bearer(f.Iss.Sign("rsa", f.Iss.Claims(Resource))) },
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			_, h := be.Seen()
			assert.Equal(t, "1234567", h.Get("X-User-Id"))
		},
	},
	{
		name: "spoofed identity headers are replaced or removed", status: 200,
		headers: func(f *Fixture) map[string][]string {
			h := withClaims(f, "es", func(c jwt.MapClaims) { delete(c, "email") })
			h["X-User-Id"] = []string{"1", "2"}
			h["X-User-Email"] = []string{"admin@example.com"}
			h["X-Scopes"] = []string{"admin"}
			h["X-User-Groups"] = []string{"admins"}
			h["X-Resource-Metadata"] = []string{"https://evil.example/.well-known/oauth-protected-resource"}
			return h
		},
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			_, h := be.Seen()
			assert.Equal(t, []string{"1234567"}, h.Values("X-User-Id"))
			assert.Empty(t, h.Values("X-User-Email"), "a token without email must leave no email header")
			assert.Equal(t, []string{"mcp"}, h.Values("X-Scopes"))
			assert.Empty(t, h.Values("X-User-Groups"), "a token without groups must leave no groups header")
			assert.Equal(t, []string{prmURL}, h.Values("X-Resource-Metadata"))
		},
	},
	{
		name: "audience as an array naming the resource passes", status: 200,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["aud"] = []string{"http://other.test/mcp", Resource} })
		},
	},
	{
		name: "token for another resource is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["aud"] = "http://mcp.test/memory/mcp" })
		},
		check: invalidToken("audience does not include " + Resource),
	},
	{
		name: "expired token is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })
		},
		check: invalidToken("expired"),
	},
	{
		name: "token expired within the clock skew passes", status: 200,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() })
		},
	},
	{
		name: "token not valid yet is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() })
		},
		check: invalidToken("not valid yet"),
	},
	{
		name: "token issued in the future is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() })
		},
		check: invalidToken("issued in the future"),
	},
	{
		name: "token from another issuer is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["iss"] = "http://evil.test" })
		},
		check: invalidToken("issuer"),
	},
	{
		name: "token without jti is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { delete(c, "jti") })
		},
		check: invalidToken("jti"),
	},
	{
		name: "token without exp is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { delete(c, "exp") })
		},
		check: invalidToken("no exp"),
	},
	{
		name: "typ other than at+jwt is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return bearer(f.Iss.Sign("es", f.Iss.Claims(Resource), func(tk *jwt.Token) { tk.Header["typ"] = "JWT" }))
		},
		check: invalidToken("at+jwt"),
	},
	{
		name: "alg none is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			c, _ := json.Marshal(f.Iss.Claims(Resource))
			e := base64.RawURLEncoding.EncodeToString
			return bearer(e([]byte(`{"alg":"none","typ":"at+jwt","kid":"es"}`)) + "." + e(c) + ".")
		},
		check: invalidToken("alg none"),
	},
	{
		name: "HS256 keyed with public material is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, f.Iss.Claims(Resource))
			tok.Header["typ"], tok.Header["kid"] = "at+jwt", "es"
			s, err := tok.SignedString(f.Iss.JWKS())
			require.NoError(f.t, err)
			return bearer(s)
		},
		check: invalidToken("alg HS256 is not accepted"),
	},
	{
		name: "RS256 header on an EC key is refused (algorithm confusion)", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return bearer(f.Iss.Sign("rsa", f.Iss.Claims(Resource), func(tk *jwt.Token) { tk.Header["kid"] = "es" }))
		},
		check: invalidToken("differs from key alg"),
	},
	{
		name: "ES384 outside the allow list is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return bearer(rawToken(`{"alg":"ES384","typ":"at+jwt","kid":"es"}`, `{}`))
		},
		check: invalidToken("alg ES384 is not accepted"),
	},
	{
		name: "unknown kid is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return bearer(f.Iss.Sign("es", f.Iss.Claims(Resource), func(tk *jwt.Token) { tk.Header["kid"] = "nope" }))
		},
		check: invalidToken("kid 'nope' is not in the issuer's key set"),
	},
	{
		name: "tampered payload fails the signature", status: 401,
		headers: func(f *Fixture) map[string][]string {
			parts := strings.Split(f.Iss.Sign("es", f.Iss.Claims(Resource)), ".")
			c := f.Iss.Claims(Resource)
			c["sub"] = "1"
			b, _ := json.Marshal(c)
			parts[1] = base64.RawURLEncoding.EncodeToString(b)
			return bearer(strings.Join(parts, "."))
		},
		check: invalidToken("signature is invalid"),
	},
	{
		name: "padded base64 is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			parts := strings.Split(f.Iss.Sign("es", f.Iss.Claims(Resource)), ".")
			parts[0] += "=="
			return bearer(strings.Join(parts, "."))
		},
		check: invalidToken("strict base64url"),
	},
	{
		name: "oversized token is refused", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["name"] = strings.Repeat("a", 9000) })
		},
		check: invalidToken("the limit is 8192"),
	},
	{
		name: "JWE is refused", status: 401,
		headers: func(f *Fixture) map[string][]string { return bearer("a.b.c.d.e") },
		check:   invalidToken("JWE"),
	},
	{
		name: "missing scope gets 403 insufficient_scope listing held and needed scopes", status: 403,
		extra: map[string]interface{}{"scopes": "mcp,tools:write"},
		headers: func(f *Fixture) map[string][]string {
			return withClaims(f, "es", func(c jwt.MapClaims) { c["scope"] = "mcp profile" })
		},
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			assert.Equal(t, `Bearer error="insufficient_scope", scope="mcp profile tools:write", resource_metadata="`+prmURL+
				`", error_description="token lacks scope tools:write"`, rec.Header().Get("WWW-Authenticate"))
			calls, _ := be.Seen()
			assert.Zero(t, calls)
		},
	},
	{
		name: "non-Bearer scheme gets the bare challenge", status: 401,
		headers: func(f *Fixture) map[string][]string {
			return map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}}
		},
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			assert.Equal(t, `Bearer resource_metadata="`+prmURL+`", scope="mcp"`, rec.Header().Get("WWW-Authenticate"))
		},
	},
	{
		name: "lowercase bearer scheme is accepted (RFC 9110: schemes are case-insensitive)", status: 200,
		headers: func(f *Fixture) map[string][]string {
			return map[string][]string{"Authorization": {"bearer " + f.Iss.Sign("es", f.Iss.Claims(Resource))}}
		},
	},
	{
		name: "two Authorization headers are a bad request", status: 400,
		headers: func(f *Fixture) map[string][]string {
			tok := f.Iss.Sign("es", f.Iss.Claims(Resource))
			return map[string][]string{"Authorization": {"Bearer " + tok, "Bearer " + tok}}
		},
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			assert.Contains(t, rec.Header().Get("WWW-Authenticate"), `error="invalid_request"`)
		},
	},
	{
		name: "empty Bearer token is a bad request", status: 400,
		headers: func(f *Fixture) map[string][]string { return map[string][]string{"Authorization": {"Bearer "}} },
	},
	{
		name: "token in the query string is ignored", status: 401, path: mcpPath + "?access_token=x",
		headers: func(f *Fixture) map[string][]string { return nil },
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			assert.Equal(t, `Bearer resource_metadata="`+prmURL+`", scope="mcp"`, rec.Header().Get("WWW-Authenticate"))
		},
	},
	{
		name: "CORS preflight passes unchallenged without identity headers", status: 200, method: http.MethodOptions,
		headers: func(f *Fixture) map[string][]string {
			return map[string][]string{"Access-Control-Request-Method": {"POST"}, "Origin": {"http://app.test"}, "X-User-Id": {"1"}}
		},
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			calls, h := be.Seen()
			assert.Equal(t, 1, calls)
			assert.Empty(t, h.Values("X-User-Id"))
		},
	},
	{
		name: "OPTIONS that is not a preflight is challenged", status: 401, method: http.MethodOptions,
		headers: func(f *Fixture) map[string][]string { return nil },
	},
	{
		name: "path-suffixed protected-resource metadata", status: 200, method: http.MethodGet,
		path: "/.well-known/oauth-protected-resource/everything/mcp",
		headers: func(f *Fixture) map[string][]string {
			return map[string][]string{"MCP-Protocol-Version": {"2025-11-25"}}
		},
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			var prm map[string]interface{}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &prm))
			assert.Equal(t, Resource, prm["resource"])
			assert.Equal(t, []interface{}{f.Iss.URL}, prm["authorization_servers"])
			assert.Equal(t, []interface{}{"mcp"}, prm["scopes_supported"])
			assert.Equal(t, []interface{}{"header"}, prm["bearer_methods_supported"])
			assert.Equal(t, "Everything", prm["resource_name"])
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))
			calls, _ := be.Seen()
			assert.Zero(t, calls)
		},
	},
	{
		name: "root protected-resource metadata", status: 200, method: http.MethodGet,
		path:    "/.well-known/oauth-protected-resource",
		headers: func(f *Fixture) map[string][]string { return nil },
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			assert.Contains(t, rec.Body.String(), `"resource":"`+Resource+`"`)
		},
	},
	{
		name: "metadata is served even with a valid token", status: 200, method: http.MethodGet,
		path:    "/.well-known/oauth-protected-resource/everything/mcp",
		headers: func(f *Fixture) map[string][]string { return bearer(f.Iss.Sign("es", f.Iss.Claims(Resource))) },
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			assert.Contains(t, rec.Body.String(), `"resource":"`+Resource+`"`)
			calls, _ := be.Seen()
			assert.Zero(t, calls)
		},
	},
	{
		name: "metadata preflight allows MCP-Protocol-Version", status: 204, method: http.MethodOptions,
		path: "/.well-known/oauth-protected-resource/everything/mcp",
		headers: func(f *Fixture) map[string][]string {
			return map[string][]string{"Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Headers": {"mcp-protocol-version"}}
		},
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			assert.Contains(t, rec.Header().Get("Access-Control-Allow-Headers"), "MCP-Protocol-Version")
			assert.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))
		},
	},
	{
		name: "metadata of another path is not ours", status: 404, method: http.MethodGet,
		path:    "/.well-known/oauth-protected-resource/memory/mcp",
		headers: func(f *Fixture) map[string][]string { return nil },
	},
	{
		name: "keepAuthorization forwards the token", status: 200, extra: map[string]interface{}{"keepAuthorization": "true"},
		headers: func(f *Fixture) map[string][]string { return bearer(f.Iss.Sign("es", f.Iss.Claims(Resource))) },
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			_, h := be.Seen()
			assert.True(t, strings.HasPrefix(h.Get("Authorization"), "Bearer "))
		},
	},
	{
		name: "header names are configurable and an empty name disables one", status: 200,
		extra: map[string]interface{}{"headers": map[string]interface{}{"userId": "X-Github-Id", "userEmail": ""}},
		headers: func(f *Fixture) map[string][]string {
			h := bearer(f.Iss.Sign("es", f.Iss.Claims(Resource)))
			h["X-Github-Id"] = []string{"spoof"}
			return h
		},
		check: func(t *testing.T, f *Fixture, rec *httptest.ResponseRecorder, be *Backend) {
			_, h := be.Seen()
			assert.Equal(t, []string{"1234567"}, h.Values("X-Github-Id"))
			assert.Empty(t, h.Values("X-User-Id"))
			assert.Empty(t, h.Values("X-User-Email"))
			assert.Equal(t, "octocat", h.Get("X-User-Name"))
		},
	},
}

// behaviour runs one table of cases through the middleware, twice each, so the second pass of every token goes
// through the verified-token cache.
func behaviour(t *testing.T, f *Fixture) {
	for _, c := range behaviourCases {
		t.Run(c.name, func(t *testing.T) {
			f.t = t
			h, be := f.Handler(c.extra)
			hdr := c.headers(f)
			method, path := c.method, c.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = mcpPath
			}
			for pass := 1; pass <= 2; pass++ {
				*be = Backend{}
				rec := do(h, method, path, hdr)
				require.Equal(t, c.status, rec.Code, "pass %d: %s %s", pass, rec.Header().Get("WWW-Authenticate"), rec.Body.String())
				if c.check != nil {
					c.check(t, f, rec, be)
				}
			}
		})
	}
}
