// Package plugin is the mcp-oauth Traefik middleware: it validates OAuth 2.1 access tokens (RFC 9068 JWTs) locally
// in front of an MCP server and serves the server's protected-resource metadata (RFC 9728).
//
// Traefik runs it through the Yaegi interpreter, so it imports the standard library only and avoids what Yaegi runs
// badly (generics, newer builtins, interpreted loops on the request path).
package plugin

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the middleware configuration. Traefik decodes the dynamic configuration into it with mapstructure
// (field names match case-insensitively, so `jwksUrl` fills JWKSURL); durations are strings such as "30s" (a bare
// number means seconds) so that YAML, TOML and docker labels all decode.
type Config struct {
	// Issuer is the authorization server's issuer URL, exactly as in its metadata and the tokens' iss (no trailing slash).
	Issuer string `json:"issuer,omitempty"`
	// Resource is the canonical URL of the protected MCP endpoint; tokens must name it in aud.
	Resource string `json:"resource,omitempty"`
	// ResourceName is the human-readable name in the protected-resource metadata.
	ResourceName string `json:"resourceName,omitempty"`
	// Scopes are the scopes a token needs for this route (default ["mcp"]).
	Scopes []string `json:"scopes,omitempty"`
	// ScopesSupported is advertised in the protected-resource metadata (default: Scopes).
	ScopesSupported []string `json:"scopesSupported,omitempty"`
	// Algorithms is the allow list of JWS algorithms (default ["ES256", "RS256"]).
	Algorithms []string `json:"algorithms,omitempty"`
	// JWKSURL overrides the jwks_uri from the issuer's metadata.
	JWKSURL string `json:"jwksUrl,omitempty"`
	// RevocationFeedURL overrides the revocation_feed_endpoint from the issuer's metadata ("off" disables the feed).
	RevocationFeedURL string `json:"revocationFeedUrl,omitempty"`
	// ClockSkew is the leeway for exp, nbf and iat (default "30s").
	ClockSkew string `json:"clockSkew,omitempty"`
	// MaxTokenBytes is the largest accepted token (default 8192).
	MaxTokenBytes int `json:"maxTokenBytes,omitempty"`
	// CacheSize, when set, bounds the verified-token cache of this route to that many entries (default 0: bounded
	// by CacheMemory only).
	CacheSize int `json:"cacheSize,omitempty"`
	// CacheMemory bounds the memory of the verified-token cache of this route: "256MiB", "1GiB", "500MB" or a bare
	// number of bytes (default: a 32nd of the memory Traefik may use, between 16 MiB and 512 MiB).
	CacheMemory string `json:"cacheMemory,omitempty"`
	// JWKSRefreshInterval is how often the key set is fetched again (default "5m").
	JWKSRefreshInterval string `json:"jwksRefreshInterval,omitempty"`
	// JWKSMinRefreshInterval is the least time between two fetches caused by unknown kids (default "30s").
	JWKSMinRefreshInterval string `json:"jwksMinRefreshInterval,omitempty"`
	// RevocationPollInterval is how often the revocation feed is polled (default: the feed's poll_interval, else "5s").
	RevocationPollInterval string `json:"revocationPollInterval,omitempty"`
	// RevocationMaxLag, when set, makes the middleware refuse every token (503) while the revocation feed has gone
	// unread for longer than this (default "": it keeps accepting tokens, and logs the feed's lag once a minute).
	RevocationMaxLag string `json:"revocationMaxLag,omitempty"`
	// FetchTimeout bounds each request to the authorization server (default "5s").
	FetchTimeout string `json:"fetchTimeout,omitempty"`
	// KeepAuthorization forwards the Authorization header to the backend (default false: it is removed).
	KeepAuthorization bool `json:"keepAuthorization,omitempty"`
	// Headers names the identity headers set for the backend; an empty name disables that header.
	Headers HeadersConfig `json:"headers,omitempty"`
}

// HeadersConfig names the identity headers the middleware sets on requests it lets through.
type HeadersConfig struct {
	// UserID carries sub (default X-User-Id).
	UserID string `json:"userId,omitempty"`
	// UserName carries username (default X-User-Name).
	UserName string `json:"userName,omitempty"`
	// UserEmail carries email when the token has one (default X-User-Email).
	UserEmail string `json:"userEmail,omitempty"`
	// ClientID carries client_id (default X-Client-Id).
	ClientID string `json:"clientId,omitempty"`
	// Scopes carries scope (default X-Scopes).
	Scopes string `json:"scopes,omitempty"`
	// UserGroups carries the groups claim, comma separated, when the token has one (default X-User-Groups).
	UserGroups string `json:"userGroups,omitempty"`
	// ResourceMetadata carries the absolute URL of this resource's protected-resource metadata, as the challenges'
	// resource_metadata names it, so the backend can send clients there in its own challenges (default
	// X-Resource-Metadata).
	ResourceMetadata string `json:"resourceMetadata,omitempty"`
}

// The defaults, stated once: parseConfig falls back to them for an option left empty (docs/plugin.md's table is held
// to them by TestDocumentedDefaults).
const (
	defaultClockSkew      = 30 * time.Second
	defaultMaxTokenBytes  = 8192
	defaultJWKSRefresh    = 5 * time.Minute
	defaultJWKSMinRefresh = 30 * time.Second
	defaultFetchTimeout   = 5 * time.Second
	// defaultFeedPoll paces the revocation feed when neither revocationPollInterval nor the feed's poll_interval does.
	defaultFeedPoll = 5 * time.Second
	defaultScope    = "mcp"
)

// defaultAlgorithms are accepted when algorithms is empty.
var defaultAlgorithms = []string{"ES256", "RS256"}

// CreateConfig returns the configuration Traefik decodes the route's options into. It sets only the header names (an
// empty name disables a header, so their defaults cannot wait for parseConfig); every other option is empty and
// takes its default in parseConfig. Slices stay nil: mapstructure decodes a list into an existing slice element by
// element, so a longer default would leave stale entries behind a shorter configured list.
func CreateConfig() *Config {
	return &Config{
		Headers: HeadersConfig{
			UserID:           "X-User-Id",
			UserName:         "X-User-Name",
			UserEmail:        "X-User-Email",
			ClientID:         "X-Client-Id",
			Scopes:           "X-Scopes",
			UserGroups:       "X-User-Groups",
			ResourceMetadata: "X-Resource-Metadata",
		},
	}
}

const (
	wellKnownPRM = "/.well-known/oauth-protected-resource"
	feedOff      = "off"
)

// settings is a validated Config with everything the request path needs precomputed.
type settings struct {
	issuer           string
	resource         string
	resourceName     string
	scopes           []string
	scopesSupported  []string
	algorithms       map[string]bool
	jwksURL          string
	feedURL          string
	skew             time.Duration
	skewSec          float64
	maxTokenBytes    int
	cacheSize        int   // 0: no count limit
	cacheMemory      int64 // bytes
	jwksRefresh      time.Duration
	jwksMinRefresh   time.Duration
	revocationPoll   time.Duration // 0: follow the feed's poll_interval
	revocationMaxLag time.Duration // 0: never refuse tokens for a stale feed
	fetchTimeout     time.Duration
	keepAuth         bool
	headers          []string // canonical names in the order userID, userName, email, clientID, scopes, groups, metadata; "" = disabled

	errIssuer   error // token errors that name this route's issuer or resource, built once
	errAudience error

	prmPath     string // path-suffixed metadata path ("" when the resource has no path)
	metadataURL string // absolute URL of the resource's metadata, for resource_metadata
}

// supportedAlgorithms are the JWS algorithms the middleware can verify. Symmetric ones and "none" are never accepted.
var supportedAlgorithms = map[string]bool{
	"ES256": true, "ES384": true, "ES512": true,
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
}

func parseConfig(c *Config) (*settings, error) {
	if c == nil {
		return nil, errors.New("no configuration given")
	}
	s := &settings{keepAuth: c.KeepAuthorization, resourceName: c.ResourceName}
	var errs []string

	iss, err := parseIssuer(c.Issuer)
	if err != nil {
		errs = append(errs, err.Error())
	}
	s.issuer = iss

	res, err := canonicalResource(c.Resource)
	if err != nil {
		errs = append(errs, err.Error())
	} else {
		s.resource = res
		u, _ := url.Parse(res)
		origin := u.Scheme + "://" + u.Host
		if u.Path != "" {
			s.prmPath = wellKnownPRM + u.Path
		}
		s.metadataURL = origin + wellKnownPRM + u.Path
	}

	s.scopes = cleanList(c.Scopes)
	if c.Scopes == nil {
		s.scopes = []string{defaultScope}
	}
	for _, sc := range s.scopes {
		if !validScopeToken(sc) {
			errs = append(errs, fmt.Sprintf("scopes: %q is not a valid scope (RFC 6749 §3.3: printable ASCII without space, \" or \\)", sc))
		}
	}
	s.scopesSupported = cleanList(c.ScopesSupported)
	if len(s.scopesSupported) == 0 {
		s.scopesSupported = s.scopes
	}

	algs := cleanList(c.Algorithms)
	if len(algs) == 0 {
		algs = defaultAlgorithms
	}
	s.algorithms = map[string]bool{}
	for _, a := range algs {
		if !supportedAlgorithms[a] {
			errs = append(errs, fmt.Sprintf("algorithms: %q is not supported (use ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384 or PS512)", a))
			continue
		}
		s.algorithms[a] = true
	}

	if c.JWKSURL != "" {
		if err := checkHTTPURL(c.JWKSURL); err != nil {
			errs = append(errs, "jwksUrl: "+err.Error())
		}
		s.jwksURL = c.JWKSURL
	}
	if c.RevocationFeedURL != "" && c.RevocationFeedURL != feedOff {
		if err := checkHTTPURL(c.RevocationFeedURL); err != nil {
			errs = append(errs, "revocationFeedUrl: "+err.Error())
		}
	}
	s.feedURL = c.RevocationFeedURL

	durations := []struct {
		name string
		val  string
		def  time.Duration
		min  time.Duration
		dst  *time.Duration
	}{
		{"clockSkew", c.ClockSkew, defaultClockSkew, 0, &s.skew},
		{"jwksRefreshInterval", c.JWKSRefreshInterval, defaultJWKSRefresh, time.Second, &s.jwksRefresh},
		{"jwksMinRefreshInterval", c.JWKSMinRefreshInterval, defaultJWKSMinRefresh, 0, &s.jwksMinRefresh},
		{"revocationPollInterval", c.RevocationPollInterval, 0, 100 * time.Millisecond, &s.revocationPoll},
		{"fetchTimeout", c.FetchTimeout, defaultFetchTimeout, 100 * time.Millisecond, &s.fetchTimeout},
		{"revocationMaxLag", c.RevocationMaxLag, 0, time.Second, &s.revocationMaxLag},
	}
	for _, d := range durations {
		v, err := parseDuration(d.val, d.def)
		if err != nil {
			errs = append(errs, d.name+": "+err.Error())
			continue
		}
		if d.val != "" && v < d.min {
			errs = append(errs, fmt.Sprintf("%s: %s is below the minimum %s", d.name, v, d.min))
			continue
		}
		*d.dst = v
	}

	if s.revocationMaxLag > 0 && c.RevocationFeedURL == feedOff {
		errs = append(errs, "revocationMaxLag: the revocation feed is off, so it has no lag to bound")
	}

	s.maxTokenBytes = c.MaxTokenBytes
	if s.maxTokenBytes == 0 {
		s.maxTokenBytes = defaultMaxTokenBytes
	}
	if s.maxTokenBytes < 256 {
		errs = append(errs, fmt.Sprintf("maxTokenBytes: %d is too small for any access token (minimum 256)", c.MaxTokenBytes))
	}
	s.cacheSize = c.CacheSize
	if s.cacheSize < 0 {
		errs = append(errs, fmt.Sprintf("cacheSize: %d must be positive", c.CacheSize))
	}
	s.cacheMemory = defaultCacheMemory
	if c.CacheMemory != "" {
		n, err := parseBytes(c.CacheMemory)
		switch {
		case err != nil:
			errs = append(errs, "cacheMemory: "+err.Error())
		case n < 1<<20:
			errs = append(errs, fmt.Sprintf("cacheMemory: %s is below the minimum 1MiB", c.CacheMemory))
		default:
			s.cacheMemory = n
		}
	}

	h := c.Headers
	for _, name := range []string{h.UserID, h.UserName, h.UserEmail, h.ClientID, h.Scopes, h.UserGroups, h.ResourceMetadata} {
		name = strings.TrimSpace(name)
		if name != "" && !validHeaderName(name) {
			errs = append(errs, fmt.Sprintf("headers: %q is not a valid header name", name))
		}
		if strings.EqualFold(name, "Authorization") {
			errs = append(errs, "headers: Authorization cannot carry an identity claim")
		}
		s.headers = append(s.headers, http.CanonicalHeaderKey(name))
	}

	if len(errs) > 0 {
		return nil, errors.New("mcp-oauth configuration: " + strings.Join(errs, "; "))
	}
	s.skewSec = s.skew.Seconds()
	s.errIssuer = errors.New("token issuer is not " + s.issuer)
	s.errAudience = errors.New("token audience does not include " + s.resource + " (the token was issued for another resource)")
	return s, nil
}

func parseIssuer(v string) (string, error) {
	if v == "" {
		return "", errors.New("issuer is required (the authorization server's issuer URL, e.g. https://auth.example.com)")
	}
	if err := checkHTTPURL(v); err != nil {
		return "", fmt.Errorf("issuer: %w", err)
	}
	if strings.HasSuffix(v, "/") {
		return "", fmt.Errorf("issuer %q must not end with / (it must equal the tokens' iss exactly)", v)
	}
	return v, nil
}

// canonicalResource returns the canonical form of an MCP endpoint URL (RFC 8707 §2, MCP authorization spec):
// lowercase scheme and host, no fragment, no query, no trailing slash.
func canonicalResource(v string) (string, error) {
	if v == "" {
		return "", errors.New("resource is required (the canonical URL of the MCP endpoint, e.g. https://mcp.example.com/mcp)")
	}
	if err := checkHTTPURL(v); err != nil {
		return "", fmt.Errorf("resource: %w", err)
	}
	u, _ := url.Parse(v)
	if u.User != nil {
		return "", fmt.Errorf("resource %q must not have user information", v)
	}
	if u.Fragment != "" || strings.Contains(v, "#") {
		return "", fmt.Errorf("resource %q must not have a fragment (RFC 8707)", v)
	}
	if u.RawQuery != "" || strings.Contains(v, "?") {
		return "", fmt.Errorf("resource %q must not have a query", v)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

func checkHTTPURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", v, err)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return fmt.Errorf("%q must be an http or https URL", v)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", v)
	}
	return nil
}

// parseDuration accepts Go durations ("30s", "5m") and bare numbers of seconds ("30"), since YAML numbers reach the
// plugin as numbers and mapstructure turns them into digit strings.
func parseDuration(v string, def time.Duration) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return def, nil
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%q is negative", v)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use e.g. \"30s\" or \"5m\")", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", v)
	}
	return d, nil
}

// defaultCacheMemory bounds each verified-token cache unless cacheMemory is set: a 32nd of the memory this process
// may use (its cgroup's limit, else the machine's), between 16 MiB and 512 MiB. The cache counts a token of the
// authserver's format as about 1.6 KiB (entryOverhead and the token; docs/plugin.md, Cache), so this holds ten
// thousand tokens on a 512 MiB container and over three hundred thousand from 16 GiB up; the cache only grows with
// the tokens actually presented.
var defaultCacheMemory = cacheShare(memoryLimit())

func cacheShare(limit int64) int64 {
	n := limit / 32
	if n < 16<<20 {
		n = 16 << 20
	}
	if n > 512<<20 {
		n = 512 << 20
	}
	return n
}

// memoryLimit is the cgroup memory limit (v2, then v1) when lower than the machine's memory, else the machine's
// memory; 8 GiB where neither can be read.
func memoryLimit() int64 {
	total := int64(8 << 30)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					total = kb << 10
				}
				break
			}
		}
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// "max" (v2) or a huge number (v1) mean no limit.
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && n < total {
			return n
		}
		break
	}
	return total
}

// parseBytes reads a size: a bare number of bytes, or a number with KB, MB, GB (powers of 1000) or KiB, MiB, GiB
// (powers of 1024).
func parseBytes(v string) (int64, error) {
	v = strings.TrimSpace(v)
	mult := 1.0
	// Longest suffixes first. (Yaegi 0.16 drops the second target of "v, mult = ..." here: one assignment each.)
	for _, u := range []string{"KiB", "MiB", "GiB", "KB", "MB", "GB", "B"} {
		if strings.HasSuffix(v, u) {
			mult = byteUnits[u]
			v = strings.TrimSpace(strings.TrimSuffix(v, u))
			break
		}
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 {
		return 0, errors.New("not a size (use e.g. \"256MiB\" or a number of bytes)")
	}
	return int64(n * mult), nil
}

var byteUnits = map[string]float64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1e3, "MB": 1e6, "GB": 1e9, "B": 1}

// cleanList trims entries and drops empty ones, and also splits space-separated entries, so "mcp tools" and
// ["mcp", "tools"] mean the same.
func cleanList(in []string) []string {
	var out []string
	for _, v := range in {
		out = append(out, strings.Fields(strings.ReplaceAll(v, ",", " "))...)
	}
	return out
}

func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			return false
		}
	}
	return s != ""
}
