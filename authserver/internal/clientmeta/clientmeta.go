// Package clientmeta resolves Client ID Metadata Documents (CIMD, draft-ietf-oauth-client-id-metadata-document, as
// the MCP authorization spec uses it): a client_id that is an https URL names a JSON document describing the client.
//
// Fetching a URL a stranger chose is a server-side request forgery risk, so the fetcher only speaks https, follows
// no redirect, refuses private, loopback, link-local and other non-public addresses on the address it actually
// connects to (so DNS rebinding cannot slip past a check made beforehand), gives up after a short timeout, reads a
// small body at most, and never uses an HTTP proxy from the environment. Documents are cached as their HTTP caching
// headers say, within configured bounds.
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
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config sets the fetcher's limits. Zero values take the defaults in New.
type Config struct {
	Timeout      time.Duration // whole fetch; default 5 s
	MaxBytes     int64         // largest document; default 64 KiB
	MinCache     time.Duration // a document is kept at least this long (even with no-cache); default 1 min
	MaxCache     time.Duration // and at most this long; default 24 h
	CacheEntries int           // documents kept; default 1000
	AllowedHosts []string      // if set, only these hosts ("example.com" or "*.example.com") may host documents
	DeniedHosts  []string      // these hosts may not

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
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ClientURI               string   `json:"client_uri"`
}

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
	cfg    Config
	client *http.Client

	mu    sync.Mutex
	cache map[string]*list.Element // of *entry, oldest use at the back
	order *list.List
}

type entry struct {
	url     string
	doc     *Document
	expires time.Time
}

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
	return &Fetcher{cfg: cfg, cache: map[string]*list.Element{}, order: list.New(), client: &http.Client{
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
		return refuse("cannot check the address %q", address)
	}
	if !public(ap.Addr()) {
		return refuse("its host resolves to %s, a private, loopback or otherwise non-public address", ap.Addr())
	}
	return nil
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
}

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
	return true
}

func hostMatches(host string, patterns []string) bool {
	host = strings.ToLower(host)
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == host || (strings.HasPrefix(p, "*.") && strings.HasSuffix(host, p[1:])) {
			return true
		}
	}
	return false
}

// Fetch returns the document named by clientID, from the cache or the network. Its errors are *Error (the
// document or its host is refused), or a fetch failure wrapped in *Error as well: either way the client is refused.
func (f *Fetcher) Fetch(ctx context.Context, clientID string) (*Document, error) {
	if !IsURL(clientID) {
		return nil, refuse("client_id %q is not an https URL with a path", clientID)
	}
	u, _ := url.Parse(clientID)
	host := u.Hostname()
	if hostMatches(host, f.cfg.DeniedHosts) || (len(f.cfg.AllowedHosts) > 0 && !hostMatches(host, f.cfg.AllowedHosts)) {
		return nil, refuse("this server does not accept clients hosted at %s", host)
	}
	if doc := f.cached(clientID); doc != nil {
		return doc, nil
	}
	doc, ttl, err := f.fetch(ctx, clientID)
	if err != nil {
		return nil, err
	}
	f.store(clientID, doc, ttl)
	return doc, nil
}

func (f *Fetcher) fetch(ctx context.Context, clientID string) (*Document, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return nil, 0, refuse("bad URL: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		var me *Error
		switch {
		case errors.As(err, &me):
			return nil, 0, me
		case errors.Is(err, errRedirect):
			return nil, 0, refuse("%s redirects; serve the document at its client_id URL itself", clientID)
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return nil, 0, refuse("%s did not answer within %s", clientID, f.cfg.Timeout)
		}
		return nil, 0, refuse("cannot fetch %s: %v", clientID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, refuse("%s answered HTTP %d, not 200", clientID, resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return nil, 0, refuse("%s is served as %q, not application/json", clientID, mt)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return nil, 0, refuse("reading %s failed: %v", clientID, err)
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		return nil, 0, refuse("the document is larger than %d bytes", f.cfg.MaxBytes)
	}
	var doc Document
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, 0, refuse("the document is not a JSON object of client metadata: %v", err)
	}
	if err := check(&doc, clientID); err != nil {
		return nil, 0, err
	}
	return &doc, f.lifetime(resp.Header), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// check applies the rules of the draft and the MCP spec to a document.
func check(d *Document, clientID string) error {
	switch {
	case d.ClientID != clientID:
		return refuse("its client_id %q must equal the URL it is served from, %q, exactly", d.ClientID, clientID)
	case strings.TrimSpace(d.ClientName) == "":
		return refuse("client_name is required")
	case len(d.RedirectURIs) == 0:
		return refuse("redirect_uris is required")
	}
	switch d.TokenEndpointAuthMethod {
	case "", "none":
		d.TokenEndpointAuthMethod = "none"
	default:
		// Shared secrets cannot be published in a document; private_key_jwt is not implemented here.
		return refuse("token_endpoint_auth_method %q is not supported for metadata-document clients: use none (a public client with PKCE)", d.TokenEndpointAuthMethod)
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

func (f *Fetcher) cached(u string) *Document {
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
	return e.doc
}

func (f *Fetcher) store(u string, doc *Document, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if el, ok := f.cache[u]; ok {
		f.order.Remove(el)
	}
	f.cache[u] = f.order.PushFront(&entry{url: u, doc: doc, expires: time.Now().Add(ttl)})
	for f.order.Len() > f.cfg.CacheEntries {
		last := f.order.Back()
		f.order.Remove(last)
		delete(f.cache, last.Value.(*entry).url)
	}
}
