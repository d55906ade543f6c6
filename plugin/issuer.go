package plugin

// The issuer's shared state: one per issuer in the package's registry, shared by every route and reload, with what
// a verdict asks of it (the key for a kid, whether a jti is revoked, whether a cached verdict still holds). Its
// loops live beside what they keep: the key set in jwks.go, the revocation set in feed.go, the caches in cache.go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// registry is the package's one global, forced by Traefik's plugin model: Traefik builds a middleware per router and
// builds them all again on every configuration reload, and offers no hook to share state or stop goroutines. Each
// issuer's key set, revocation set, verified-token caches and background refresh loops live here, keyed by issuer
// and endpoints, so a reload reuses them: no fetch storm, no cold cache.
var registry = newRegistry()

func newRegistry() *issuerRegistry {
	r := &issuerRegistry{issuers: map[string]*issuerState{}}
	// Yaegi hands the plugin Traefik's own stdout and stderr. MCP_OAUTH_PLUGIN_LOGS=off silences the plugin.
	var out, errOut io.Writer = os.Stdout, os.Stderr
	if os.Getenv("MCP_OAUTH_PLUGIN_LOGS") == "off" {
		out, errOut = io.Discard, io.Discard
	}
	r.info = slog.New(slog.NewTextHandler(out, nil)).With("plugin", "mcp-oauth")
	r.errs = slog.New(slog.NewTextHandler(errOut, nil)).With("plugin", "mcp-oauth")
	return r
}

type issuerRegistry struct {
	mu      sync.Mutex
	issuers map[string]*issuerState
	info    *slog.Logger // progress (keys loaded again) on stdout
	errs    *slog.Logger // failures to reach the authorization server on stderr
}

// issuerFor returns the shared state of the issuer s names, starting its refresh loops the first time.
func (r *issuerRegistry) issuerFor(s *settings) *issuerState {
	key := s.issuer + "\n" + s.jwksURL + "\n" + s.feedURL
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.issuers[key]
	if st == nil {
		st = &issuerState{
			issuer:    s.issuer,
			jwksConf:  s.jwksURL,
			feedConf:  s.feedURL,
			client:    &http.Client{},
			revoked:   map[string]int64{},
			caches:    map[string]*tokenCache{},
			info:      r.info,
			errs:      r.errs,
			startedAt: time.Now(),
		}
		st.setTiming(s)
		r.issuers[key] = st
		go st.keysLoop()
		go st.feedLoop()
		go st.cacheLoop()
		return st
	}
	// The newest configuration's timings win, so a reload that changes them takes effect without a new fetch.
	st.setTiming(s)
	return st
}

// stopAll ends every refresh loop and forgets all issuers (tests use it between cases).
func (r *issuerRegistry) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, st := range r.issuers {
		st.mu.Lock()
		st.stopped = true
		st.mu.Unlock()
		delete(r.issuers, k)
	}
}

// issuerState is what every middleware of one issuer shares.
type issuerState struct {
	issuer   string
	jwksConf string // configured JWKS URL, "" = from metadata
	feedConf string // configured feed URL, "" = from metadata, "off" = none
	client   *http.Client
	info     *slog.Logger
	errs     *slog.Logger

	mu             sync.RWMutex
	jwksRefresh    time.Duration
	jwksMinRefresh time.Duration
	poll           time.Duration
	fetchTimeout   time.Duration
	jwksURL        string // resolved endpoints
	feedURL        string
	keys           map[string]*verifyKey
	feedTried      bool             // the first revocation poll has finished (so no revoked token slips in at start)
	feedReadAt     time.Time        // end of the last complete read of the feed (zero: none yet)
	startedAt      time.Time        // when this issuer's loops started, for the lag before a first read
	maxLag         time.Duration    // revocationMaxLag: refuse tokens once the feed is this stale (0: never)
	feedStale      bool             // the feed has been unreadable for longer than maxLag: tokens get 503
	revoked        map[string]int64 // jti -> exp
	cursor         int64
	caches         map[string]*tokenCache
	stopped        bool // set by stopAll (tests); the loops end at their next wake-up

	discoverMu sync.Mutex // one metadata fetch at a time
	refreshMu  sync.Mutex // one JWKS fetch at a time
	lastFetch  time.Time  // of the last JWKS fetch attempt, guarded by refreshMu
}

func (st *issuerState) setTiming(s *settings) {
	st.mu.Lock()
	st.jwksRefresh, st.jwksMinRefresh, st.poll, st.fetchTimeout = s.jwksRefresh, s.jwksMinRefresh, s.revocationPoll, s.fetchTimeout
	st.maxLag = s.revocationMaxLag
	st.mu.Unlock()
}

// cacheFor returns the verified-token cache of one route policy. Routes whose policy (resource, scopes, header
// names, skew, keepAuthorization, algorithms, maxTokenBytes) is the same share a cache, which is what keeps it warm
// across reloads.
func (st *issuerState) cacheFor(s *settings) *tokenCache {
	var algs []string
	for _, a := range []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"} {
		if s.algorithms[a] {
			algs = append(algs, a)
		}
	}
	key := s.resource + "\n" + strings.Join(s.scopes, " ") + "\n" + strings.Join(s.headers, ",") + "\n" + s.skew.String() +
		"\n" + strconv.FormatBool(s.keepAuth) + "\n" + strings.Join(algs, ",") + "\n" + strconv.Itoa(s.maxTokenBytes)
	st.mu.Lock()
	defer st.mu.Unlock()
	c := st.caches[key]
	if c == nil {
		c = newTokenCache(time.Now().Unix())
		st.caches[key] = c
	}
	c.setLimits(s.cacheMemory, s.cacheSize)
	return c
}

// sleep waits d and reports whether the loops should go on. The loops sleep instead of selecting on a timer and a
// stop channel because Yaegi 0.16 shares a select statement's state between goroutines running it at once (two
// issuers' loops would wait on each other's channels).
func (st *issuerState) sleep(d time.Duration) bool {
	time.Sleep(d)
	st.mu.RLock()
	defer st.mu.RUnlock()
	return !st.stopped
}

// asMetadata is the part of RFC 8414 metadata the middleware reads.
type asMetadata struct {
	Issuer                 string `json:"issuer"`
	JWKSURI                string `json:"jwks_uri"`
	RevocationFeedEndpoint string `json:"revocation_feed_endpoint"`
}

// discover reads the issuer's metadata to find the endpoints that were not configured.
func (st *issuerState) discover() error {
	st.discoverMu.Lock()
	defer st.discoverMu.Unlock()
	st.mu.RLock()
	done := (st.jwksConf != "" || st.jwksURL != "") && (st.feedConf != "" || st.feedURL != "")
	st.mu.RUnlock()
	if done {
		return nil
	}
	u := st.issuer + "/.well-known/oauth-authorization-server"
	body, err := st.get(u)
	if err != nil {
		return err
	}
	var md asMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		return fmt.Errorf("%s is not JSON metadata: %w", u, err)
	}
	// RFC 8414 §3.3: metadata whose issuer differs from the one asked for must not be used.
	if md.Issuer != st.issuer {
		return fmt.Errorf("%s names issuer %q, not %q", u, md.Issuer, st.issuer)
	}
	if md.JWKSURI == "" && st.jwksConf == "" {
		return fmt.Errorf("%s has no jwks_uri; set jwksUrl", u)
	}
	st.mu.Lock()
	if st.jwksURL == "" {
		st.jwksURL = md.JWKSURI
	}
	if st.feedURL == "" {
		st.feedURL = md.RevocationFeedEndpoint
		if st.feedURL == "" {
			st.feedURL = st.issuer + "/revocations"
		}
	}
	st.mu.Unlock()
	return nil
}

// endpoint returns the configured URL, else the one found in the issuer's metadata (read once, on first need).
func (st *issuerState) endpoint(configured string, discovered *string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	st.mu.RLock()
	u := *discovered
	st.mu.RUnlock()
	if u != "" {
		return u, nil
	}
	if err := st.discover(); err != nil {
		return "", err
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	return *discovered, nil
}

// purge drops matching entries from every cache of this issuer.
func (st *issuerState) purge(match func(*cacheEntry) bool) {
	for _, c := range st.allCaches() {
		c.purge(match)
	}
}

func (st *issuerState) allCaches() []*tokenCache {
	st.mu.RLock()
	defer st.mu.RUnlock()
	caches := make([]*tokenCache, 0, len(st.caches))
	for _, c := range st.caches {
		caches = append(caches, c)
	}
	return caches
}

// cacheLoop expires cached tokens once a second; the request path never looks at the clock.
func (st *issuerState) cacheLoop() {
	for st.sleep(time.Second) {
		now := time.Now().Unix()
		for _, c := range st.allCaches() {
			c.sweep(now)
		}
	}
}

// maxBody bounds what the middleware reads of one answer from the authorization server.
const maxBody = 1 << 20

// get fetches a URL from the authorization server, bounded in time and size.
func (st *issuerState) get(u string) ([]byte, error) {
	st.mu.RLock()
	timeout := st.fetchTimeout
	st.mu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := st.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the body: %w", u, err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("GET %s: the answer is larger than %d bytes", u, maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return body, nil
}

var errKeysNotReady = errors.New("signing keys are not loaded yet")

// keyFor returns the key for kid, or errKeysNotReady until keys are known and the revocation feed was read once (or
// is off), so that no revoked token slips in at start. An unknown kid triggers a JWKS fetch (refreshFor).
func keyFor(st *issuerState, kid string) (*verifyKey, error) {
	st.mu.RLock()
	k, ready, stale := st.keys[kid], st.keys != nil && (st.feedTried || st.feedConf == feedOff), st.feedStale
	st.mu.RUnlock()
	if stale {
		return nil, errFeedStale
	}
	if k == nil || !ready {
		return st.refreshFor(kid, ready)
	}
	return k, nil
}

// errFeedStale: the revocation feed has been unreadable for longer than revocationMaxLag, so no token is accepted.
var errFeedStale = errors.New("the revocation feed has not been read for longer than revocationMaxLag")

func isRevoked(st *issuerState, jti string) bool {
	st.mu.RLock()
	_, ok := st.revoked[jti]
	st.mu.RUnlock()
	return ok
}

// recheck reports whether a verdict just cached still holds: errFeedStale when the revocation feed went stale
// meanwhile (503), errRevokedOrRetired when jti was revoked or kid left the key set (401), else nil.
func recheck(st *issuerState, jti, kid string) error {
	st.mu.RLock()
	_, revoked := st.revoked[jti]
	_, known := st.keys[kid]
	stale := st.feedStale
	st.mu.RUnlock()
	if stale {
		return errFeedStale
	}
	if revoked || !known {
		return errRevokedOrRetired
	}
	return nil
}

var errRevokedOrRetired = errors.New("token has been revoked or its signing key was retired")
