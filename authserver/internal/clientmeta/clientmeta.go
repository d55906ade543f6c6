// Package clientmeta resolves Client ID Metadata Documents (CIMD, draft-ietf-oauth-client-id-metadata-document, as
// the MCP authorization spec uses it): a client_id that is an https URL names a JSON document describing the client.
// It also fetches the JSON Web Key Sets clients publish at their jwks_uri (RFC 7591 §2) for private_key_jwt client
// authentication, through the same guarded client and cache.
//
// Fetching a URL a stranger chose is a server-side request forgery risk, so the fetcher only speaks https, follows
// no redirect, refuses private, loopback, link-local and other non-public addresses on the address it actually
// connects to (so DNS rebinding cannot slip past a check made beforehand), gives up after a short timeout, reads a
// small body at most, and never uses an HTTP proxy from the environment. Documents are cached as their HTTP caching
// headers say, within configured bounds; a document that could not be fetched is cached as a failure for the
// minimum time, and concurrent look-ups of one URL share one fetch, so a flood of requests naming one URL makes one
// request to its host. A caller is told that a document could not be used and what a usable one looks like, never
// what the other host answered (its status, content type, address or timing): that goes to the log.
package clientmeta

import (
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/hostname"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
)

// Config sets the fetcher's limits. Zero values take the defaults in New.
type Config struct {
	Timeout      time.Duration // whole fetch; default 5 s
	MaxBytes     int64         // largest document; default 64 KiB
	MinCache     time.Duration // a document is kept at least this long (even with no-cache); default 1 min
	MaxCache     time.Duration // and at most this long; default 24 h
	CacheEntries int           // documents kept; default 1000
	// If set, only these hosts ("example.com" or "*.example.com") may host documents. Hosts are compared in
	// canonical form (hostname.Canonical): "LOCALHOST.", "ｌｏｃａｌｈｏｓｔ" and "localhost" are one host.
	AllowedHosts []string
	DeniedHosts  []string     // these hosts may not
	Log          *slog.Logger // why fetches failed; nil: not logged

	// AllowPrivateAddresses lets documents come from loopback and private networks. Development and tests only:
	// it reopens the SSRF hole this package closes.
	AllowPrivateAddresses bool
	RootCAs               *x509.CertPool // trusted CAs; nil: the system's
}

// Document is the part of a client metadata document the authorization server uses.
type Document struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"` // after Fetch: none or private_key_jwt
	GrantTypes              []string `json:"grant_types"`
	ClientURI               string   `json:"client_uri"`
	// private_key_jwt (RFC 7523): where the client's public keys are, or the keys themselves, and the algorithm it
	// signs with.
	JWKSURI                     string          `json:"jwks_uri"`
	JWKS                        json.RawMessage `json:"jwks"`
	TokenEndpointAuthSigningAlg string          `json:"token_endpoint_auth_signing_alg"`
	// TokenEndpointAuthMethodsSupported is not RFC 7591 metadata, but some clients (ChatGPT) list every method they
	// can use there. After Fetch it holds those this server also accepts, other than TokenEndpointAuthMethod.
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
}

// Authentication methods a document client may use: a published document cannot hold a shared secret.
const (
	AuthNone          = "none"
	AuthPrivateKeyJWT = "private_key_jwt"
)

// Error is a document that cannot be used; its message says why in words a client's developer can act on.
type Error struct{ Reason string }

func (e *Error) Error() string { return "client metadata document: " + e.Reason }

func refuse(format string, a ...any) error { return &Error{Reason: fmt.Sprintf(format, a...)} }

// IsURL reports whether a client_id names a metadata document: an https URL with a path other than "/" (the MCP
// spec's rule, which tells such ids apart from registered ones).
func IsURL(clientID string) bool {
	u, err := url.Parse(clientID)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.Path != "" && u.Path != "/"
}

// Fetcher fetches and caches documents. Safe for concurrent use.
type Fetcher struct {
	cfg             Config
	allowed, denied []string // the host lists in canonical form
	client          *http.Client
	log             *slog.Logger
	flight          singleflight.Group // one fetch per cache key at a time
	mu              sync.Mutex
	cache           map[string]*list.Element // of *entry, oldest use at the back
	order           *list.List
	inFlight        map[string]bool // keys being fetched: a look-up of one joins that fetch
}

// entry is one cached document or key set, or the failure to get it, by its URL (key sets under keysKey(URL), so
// the two never mix).
type entry struct {
	url     string
	value   any       // *Document or []jwk.Key; nil when err is set
	err     error     // *Error: the look-up failed, and answers the same until the entry expires
	fetched time.Time // when it was last fetched, or a refetch of it tried
	expires time.Time
}

func keysKey(uri string) string { return "jwks " + uri }

// minRefetch is the least time between two fetches of one key set when a client presents a key id the cached set
// does not have (key rotation), so made-up key ids cannot turn into a flood of fetches.
const minRefetch = 30 * time.Second

// New returns a fetcher.
func New(cfg Config) *Fetcher {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 10
	}
	if cfg.MinCache <= 0 {
		cfg.MinCache = time.Minute
	}
	if cfg.MaxCache < cfg.MinCache {
		cfg.MaxCache = max(cfg.MinCache, 24*time.Hour)
	}
	if cfg.CacheEntries <= 0 {
		cfg.CacheEntries = 1000
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout}
	if !cfg.AllowPrivateAddresses {
		dialer.Control = publicOnly
	}
	transport := &http.Transport{
		Proxy:                 nil, // an environment proxy would connect for us, past the address check
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Fetcher{cfg: cfg, allowed: hostPatterns(cfg.AllowedHosts), denied: hostPatterns(cfg.DeniedHosts), log: log,
		cache: map[string]*list.Element{}, order: list.New(), inFlight: map[string]bool{}, client: &http.Client{
			Transport: transport,
			Timeout:   cfg.Timeout,
			// A redirect could lead anywhere (an internal address on another host); the document must be where its
			// client_id says.
			CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
		}}
}

var errRedirect = errors.New("redirected")

// publicOnly runs on the address being connected to, after DNS resolution.
func publicOnly(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("cannot check the address %q", address)
	}
	if !public(ap.Addr()) {
		return fmt.Errorf("the host resolves to %s, a private, loopback or otherwise non-public address", ap.Addr())
	}
	return nil
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("::/96"),          // IPv4-compatible (deprecated): ::127.0.0.1 reaches 127.0.0.1 on some stacks
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64 (RFC 8215): maps into whatever the operator chose
	netip.MustParsePrefix("2001::/32"),      // Teredo: its IPv4 addresses are hidden, so they cannot be checked
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated, still routed inside some networks)
}

// Prefixes whose addresses carry an IPv4 address: the IPv4 address they lead to must itself be public.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64 (RFC 6052): the last 32 bits
	sixToFour = netip.MustParsePrefix("2002::/16")    // 6to4 (RFC 3056): bits 16-47
)

func public(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	if v4, ok := embeddedIPv4(a); ok {
		return public(v4)
	}
	return true
}

// embeddedIPv4 is the IPv4 address a NAT64 or 6to4 address leads to: a translator or relay connects to it, so a
// document "at" 64:ff9b::7f00:1 is one at 127.0.0.1.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// hostPattern is an allow or deny list entry in canonical form: a host, or "*." and a host (its subdomains).
func hostPattern(p string) (string, error) {
	p = strings.TrimSpace(p)
	wild := strings.HasPrefix(p, "*.")
	h, err := hostname.Canonical(strings.TrimPrefix(p, "*."))
	if err != nil {
		return "", fmt.Errorf("%q is not a host name or *.host: %w", p, err)
	}
	if wild {
		return "*." + h, nil
	}
	return h, nil
}

// CheckHosts reports an entry of an allow or deny list that is not a host name or *.host, for a configuration
// error at start (New would drop it, and a dropped deny entry refuses nothing).
func CheckHosts(patterns []string) error {
	for _, p := range patterns {
		if _, err := hostPattern(p); err != nil {
			return err
		}
	}
	return nil
}

func hostPatterns(list []string) []string {
	var out []string
	for _, p := range list {
		if c, err := hostPattern(p); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// hostMatches reports whether a canonical host is one of the canonical patterns.
func hostMatches(host string, patterns []string) bool {
	for _, p := range patterns {
		if p == host || (strings.HasPrefix(p, "*.") && strings.HasSuffix(host, p[1:])) {
			return true
		}
	}
	return false
}

// Fetch returns the document named by clientID, from the cache or the network. Its errors are *Error (the
// document or its host is refused, or it could not be fetched: either way the client is refused).
func (f *Fetcher) Fetch(ctx context.Context, clientID string) (*Document, error) {
	if !IsURL(clientID) {
		return nil, refuse("client_id %q is not an https URL with a path", clientID)
	}
	if err := f.hostAllowed(clientID, "clients"); err != nil {
		return nil, err
	}
	v, err := f.resolve(ctx, clientID, clientID, false, func(body []byte) (any, error) {
		var doc Document
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, withDetail(err, "the document at %s is not a JSON object of client metadata", clientID)
		}
		if err := check(&doc, clientID); err != nil {
			return nil, err
		}
		return &doc, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Document), nil
}

// JWKS returns the signing keys of the JSON Web Key Set at uri (a client's jwks_uri), cached as its HTTP headers
// say, like documents. fresh asks for a newer copy than the cached one (the client signed with a key id the cached
// set lacks: it rotated its keys); the set is then fetched again, unless the cached copy is younger than
// minRefetch. Its errors are *Error.
func (f *Fetcher) JWKS(ctx context.Context, uri string, fresh bool) ([]jwk.Key, error) {
	if err := CheckJWKSURI(uri); err != nil {
		return nil, err
	}
	if err := f.hostAllowed(uri, "client keys"); err != nil {
		return nil, err
	}
	v, err := f.resolve(ctx, keysKey(uri), uri, fresh, func(body []byte) (any, error) {
		keys, err := jwk.ParseSet(body)
		if err != nil {
			return nil, withDetail(err,
				"the key set at %s is not a usable JSON Web Key Set of public signing keys (RFC 7517)", uri)
		}
		return keys, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]jwk.Key), nil
}

// WouldFetch reports whether Fetch(clientID) would go to the network now: the id is a document URL on a host this
// fetcher accepts, neither the document nor its failure is cached, and no fetch of it is in flight. Look-ups that
// fetch are the ones worth limiting; the others are answered from memory or by a fetch already under way.
func (f *Fetcher) WouldFetch(clientID string) bool {
	return IsURL(clientID) && f.hostAllowed(clientID, "") == nil && f.stale(clientID, false)
}

// WouldFetchKeys is WouldFetch for JWKS(uri, fresh).
func (f *Fetcher) WouldFetchKeys(uri string, fresh bool) bool {
	return CheckJWKSURI(uri) == nil && f.hostAllowed(uri, "") == nil && f.stale(keysKey(uri), fresh)
}

func (f *Fetcher) stale(key string, fresh bool) bool {
	f.mu.Lock()
	busy := f.inFlight[key]
	f.mu.Unlock()
	return !busy && needsFetch(f.cached(key), fresh)
}

// needsFetch reports whether a cache entry (nil: none) must be fetched again: there is none, or fresh asks for a
// newer copy of a key set last tried at least minRefetch ago. A cached failure stands until it expires.
func needsFetch(e *entry, fresh bool) bool {
	return e == nil || (fresh && e.err == nil && time.Since(e.fetched) >= minRefetch)
}

// fetchErr is a failure with two faces: what the caller is told, and what only the log says (what the other host
// answered, or the parser's complaint about it).
type fetchErr struct {
	public *Error
	detail error
}

func (e *fetchErr) Error() string { return e.public.Error() + ": " + e.detail.Error() }

// withDetail is a refusal whose reason the caller is told, and whose detail only the log says.
func withDetail(detail error, format string, a ...any) error {
	return &fetchErr{public: &Error{Reason: fmt.Sprintf(format, a...)}, detail: detail}
}

// resolve returns what is cached under key, or fetches target, decodes it with parse and caches the outcome: the
// value for as long as the headers say (within bounds), a failure for MinCache. Concurrent look-ups of one key share
// one fetch, which runs apart from any one caller's context: a caller that goes away neither cancels the others'
// fetch nor leaves a failure cached for them.
func (f *Fetcher) resolve(ctx context.Context, key, target string, fresh bool, parse func([]byte) (any, error)) (any, error) {
	if e := f.cached(key); !needsFetch(e, fresh) {
		return e.value, e.err
	}
	ch := f.flight.DoChan(key, func() (any, error) {
		f.mu.Lock()
		f.inFlight[key] = true
		f.mu.Unlock()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.Timeout)
		defer cancel()
		body, ttl, err := f.get(fctx, target)
		var v any
		if err == nil {
			v, err = parse(body)
		}
		if err != nil {
			detail := ""
			var fe *fetchErr
			if errors.As(err, &fe) {
				detail, err = fe.detail.Error(), fe.public
			}
			// Info, not a warning: anyone can name a URL that fails.
			f.log.InfoContext(fctx, "client document or key set refused", "url", target, "reason", err.Error(), "detail", detail)
			ttl = f.cfg.MinCache
		}
		f.store(key, v, err, ttl)
		return v, err
	})
	select {
	case res := <-ch:
		return res.Val, res.Err
	case <-ctx.Done():
		return nil, refuse("the request ended before %s was fetched", target)
	}
}

// CheckJWKSURI applies the rules for a jwks_uri: an absolute https URL without user information or fragment.
func CheckJWKSURI(uri string) error {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return refuse("jwks_uri %q must be an https URL without user information or fragment", uri)
	}
	return nil
}

// hostAllowed applies the host lists to the URL's host in canonical form, so that no other spelling of a denied
// host ("localhost.", upper case, an international form) passes; a host with no canonical form is refused.
func (f *Fetcher) hostAllowed(raw, what string) error {
	u, _ := url.Parse(raw)
	host, err := hostname.Canonical(u.Hostname())
	if err != nil || hostMatches(host, f.denied) || (len(f.allowed) > 0 && !hostMatches(host, f.allowed)) {
		return refuse("this server does not accept %s hosted at %s", what, hostname.Of(u.Hostname()).ASCII)
	}
	return nil
}

// get fetches a small JSON resource with every protection of the package and returns its body and how long it
// may be cached. Its errors are *fetchErr: the caller learns only that the resource could not be fetched, and what
// a usable one looks like.
func (f *Fetcher) get(ctx context.Context, target string) ([]byte, time.Duration, error) {
	fail := func(format string, a ...any) error {
		return withDetail(fmt.Errorf(format, a...), "%s could not be fetched: it must be served at that very URL "+
			"(no redirect), from a public address, over https, answering 200 with application/json of at most %d bytes "+
			"within %s (the authorization server's log says what went wrong)", target, f.cfg.MaxBytes, f.cfg.Timeout)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, 0, fail("bad URL: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, errRedirect):
			return nil, 0, fail("redirected")
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return nil, 0, fail("no answer within %s", f.cfg.Timeout)
		}
		return nil, 0, fail("%w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fail("answered HTTP %d, not 200", resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return nil, 0, fail("served as %q, not application/json", mt)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return nil, 0, fail("reading the body: %w", err)
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		return nil, 0, fail("larger than %d bytes", f.cfg.MaxBytes)
	}
	return body, f.lifetime(resp.Header), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// check applies the rules of the draft and the MCP spec to a document.
func check(d *Document, clientID string) error {
	switch {
	case d.ClientID != clientID:
		return withDetail(fmt.Errorf("client_id %q", d.ClientID),
			"its client_id must equal the URL it is served from, %q, exactly", clientID)
	case strings.TrimSpace(d.ClientName) == "":
		return refuse("client_name is required")
	case len(d.RedirectURIs) == 0:
		return refuse("redirect_uris is required")
	}
	if strings.TrimSpace(string(d.JWKS)) == "null" {
		d.JWKS = nil
	}
	hasKeys := d.JWKSURI != "" || len(d.JWKS) > 0
	switch d.TokenEndpointAuthMethod {
	case "", AuthNone:
		d.TokenEndpointAuthMethod = AuthNone
	case AuthPrivateKeyJWT:
		if !hasKeys {
			return refuse("token_endpoint_auth_method private_key_jwt needs the client's public keys: publish jwks_uri (or jwks)")
		}
	case "client_secret_basic", "client_secret_post", "client_secret_jwt":
		return refuse("token_endpoint_auth_method %q needs a shared secret, which a published document cannot hold: use private_key_jwt or none", d.TokenEndpointAuthMethod)
	default:
		return withDetail(fmt.Errorf("token_endpoint_auth_method %q", d.TokenEndpointAuthMethod),
			"its token_endpoint_auth_method is not supported: use private_key_jwt or none")
	}
	if hasKeys {
		if err := checkKeys(d); err != nil {
			return err
		}
	}
	// Further methods the client can use: those this server accepts too (private_key_jwt only with keys).
	var also []string
	for _, m := range d.TokenEndpointAuthMethodsSupported {
		if m != d.TokenEndpointAuthMethod && !slices.Contains(also, m) && (m == AuthNone || (m == AuthPrivateKeyJWT && hasKeys)) {
			also = append(also, m)
		}
	}
	d.TokenEndpointAuthMethodsSupported = also
	return nil
}

// checkKeys applies RFC 7591 §2 to a document's keys: jwks_uri or jwks, not both; a usable set; a known algorithm.
func checkKeys(d *Document) error {
	if d.JWKSURI != "" && len(d.JWKS) > 0 {
		return refuse("jwks_uri and jwks must not both be present (RFC 7591 §2)")
	}
	if d.JWKSURI != "" {
		if err := CheckJWKSURI(d.JWKSURI); err != nil {
			return err
		}
	} else if _, err := jwk.ParseSet(d.JWKS); err != nil {
		return withDetail(err, "its jwks is not a usable JSON Web Key Set of public signing keys (RFC 7517)")
	}
	if a := d.TokenEndpointAuthSigningAlg; a != "" && !slices.Contains(jwk.Algorithms, a) {
		return withDetail(fmt.Errorf("token_endpoint_auth_signing_alg %q", a),
			"its token_endpoint_auth_signing_alg is not accepted (use one of %s)", strings.Join(jwk.Algorithms, ", "))
	}
	return nil
}

// lifetime reads Cache-Control max-age / no-store / no-cache and Expires, kept within [MinCache, MaxCache].
func (f *Fetcher) lifetime(h http.Header) time.Duration {
	ttl := f.cfg.MinCache
	found := false
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return f.cfg.MinCache // still kept a moment: a flood of authorizations must not become a flood of fetches
		case strings.HasPrefix(d, "max-age="):
			if s, err := strconv.Atoi(strings.TrimPrefix(d, "max-age=")); err == nil {
				ttl, found = time.Duration(s)*time.Second, true
			}
		}
	}
	if !found {
		if t, err := http.ParseTime(h.Get("Expires")); err == nil {
			ttl = time.Until(t)
		}
	}
	return min(max(ttl, f.cfg.MinCache), f.cfg.MaxCache)
}

// cached returns a copy of a live cache entry (nil if none).
func (f *Fetcher) cached(u string) *entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	el, ok := f.cache[u]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if time.Now().After(e.expires) {
		f.order.Remove(el)
		delete(f.cache, u)
		return nil
	}
	f.order.MoveToFront(el)
	c := *e
	return &c
}

// store caches a value, or a failure (err set), for ttl, and ends the key's fetch in flight (in one step, so a
// look-up finds one or the other). A failed refetch of a key set that is still cached keeps the copy that works
// (the keys it holds still verify) and only counts as a try for minRefetch.
func (f *Fetcher) store(u string, v any, err error, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.inFlight, u)
	now := time.Now()
	if el, ok := f.cache[u]; ok {
		if old := el.Value.(*entry); err != nil && old.err == nil && now.Before(old.expires) {
			old.fetched = now
			return
		}
		f.order.Remove(el)
	}
	f.cache[u] = f.order.PushFront(&entry{url: u, value: v, err: err, fetched: now, expires: now.Add(ttl)})
	for f.order.Len() > f.cfg.CacheEntries {
		last := f.order.Back()
		f.order.Remove(last)
		delete(f.cache, last.Value.(*entry).url)
	}
}
