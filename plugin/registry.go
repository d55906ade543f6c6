package plugin

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

var errKeysNotReady = errors.New("signing keys are not loaded yet")

// errFeedStale: the revocation feed has been unreadable for longer than revocationMaxLag, so no token is accepted.
var errFeedStale = errors.New("the revocation feed has not been read for longer than revocationMaxLag")

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
	keysErr        string // why keys are missing, for logs
	feedTried      bool   // the first revocation poll has finished (so no revoked token slips in at start)
	feedOK         bool
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

// keyFor returns the key for kid, or errKeysNotReady until keys are known and the revocation feed was read once (or
// is off), so that no revoked token slips in at start. An unknown kid triggers a JWKS fetch (refreshFor).
func (st *issuerState) keyFor(kid string) (*verifyKey, error) {
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

// refreshFor fetches the JWKS for an unknown kid, at most once per jwksMinRefresh, so a flood of made-up kids cannot
// hammer the authorization server.
func (st *issuerState) refreshFor(kid string, ready bool) (*verifyKey, error) {
	if !ready {
		return nil, errKeysNotReady
	}
	st.refreshMu.Lock()
	defer st.refreshMu.Unlock()
	st.mu.RLock()
	k, minGap := st.keys[kid], st.jwksMinRefresh
	st.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	if time.Since(st.lastFetch) >= minGap {
		if err := st.fetchKeysLocked(); err != nil {
			st.errs.Warn("JWKS refresh for an unknown kid failed", "issuer", st.issuer, "error", err)
		}
		st.mu.RLock()
		k = st.keys[kid]
		st.mu.RUnlock()
		if k != nil {
			return k, nil
		}
	}
	return nil, errUnknownKid(kid)
}

func errUnknownKid(kid string) error {
	return fmt.Errorf("token kid '%s' is not in the issuer's key set", quoteSafe(kid))
}

func (st *issuerState) keysLoop() {
	backoff := time.Second
	failing := false
	for {
		st.refreshMu.Lock()
		err := st.fetchKeysLocked()
		st.refreshMu.Unlock()
		st.mu.RLock()
		wait, loaded := st.jwksRefresh, st.keys != nil
		st.mu.RUnlock()
		if err != nil {
			if !failing {
				st.errs.Error("cannot load the issuer's signing keys; retrying", "issuer", st.issuer, "error", err)
			}
			failing = true
			if !loaded {
				// Until keys arrive every request gets 503, so retry soon, backing off to 30 s.
				wait = backoff
				if backoff < 30*time.Second {
					backoff *= 2
				}
			}
		} else {
			if failing {
				st.info.Info("signing keys loaded", "issuer", st.issuer)
			}
			failing = false
			backoff = time.Second
		}
		if !st.sleep(wait) {
			return
		}
	}
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

// fetchKeysLocked fetches the JWKS and installs it; the caller holds refreshMu. Cached tokens signed by a key that
// left the set are dropped, so a retired key stops working at once.
func (st *issuerState) fetchKeysLocked() error {
	st.lastFetch = time.Now()
	u, err := st.jwksEndpoint()
	if err != nil {
		return err
	}
	body, err := st.get(u)
	if err != nil {
		return err
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if len(skipped) > 0 {
		st.errs.Warn("JWKS has keys this middleware cannot use", "url", u, "skipped", strings.Join(skipped, "; "))
	}
	st.mu.Lock()
	old := st.keys
	st.keys = keys
	st.mu.Unlock()
	var gone []string
	for kid := range old {
		if keys[kid] == nil {
			gone = append(gone, kid)
		}
	}
	if len(gone) > 0 {
		st.purge(func(e *cacheEntry) bool {
			for _, kid := range gone {
				if e.kid == kid {
					return true
				}
			}
			return false
		})
	}
	return nil
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

func (st *issuerState) jwksEndpoint() (string, error) { return st.endpoint(st.jwksConf, &st.jwksURL) }

func (st *issuerState) feedEndpoint() (string, error) { return st.endpoint(st.feedConf, &st.feedURL) }

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

// feedPage is one answer of the revocation feed (docs/architecture.md): at most a page of entries; more says that
// further pages follow from cursor.
type feedPage struct {
	Cursor  int64 `json:"cursor"`
	More    bool  `json:"more"`
	Revoked []struct {
		Jti string `json:"jti"`
		Exp int64  `json:"exp"`
	} `json:"revoked"`
	PollInterval float64 `json:"poll_interval"`
}

// maxFeedPages bounds the pages one poll follows (1000 entries each on the authserver): a feed that never ends is
// an error, not a loop.
const maxFeedPages = 10000

// feedLoop polls the revocation feed for as long as the issuer is configured. A feed that cannot be read is never
// ignored quietly: the loop keeps retrying at the poll interval, logs the failure when it starts and then once a
// minute with how long the feed has gone unread (its lag), logs the recovery, and, when revocationMaxLag is set,
// refuses every token (503) once the lag exceeds it.
func (st *issuerState) feedLoop() {
	if st.feedConf == feedOff {
		return
	}
	var failingSince, lastReport time.Time
	for {
		hint, err := st.pollFeed()
		now := time.Now()
		st.mu.Lock()
		st.feedTried = true
		st.feedOK = err == nil
		if err == nil {
			st.feedReadAt = now
		}
		lag := st.lagLocked(now)
		wasStale := st.feedStale
		st.feedStale = err != nil && st.maxLag > 0 && lag > st.maxLag
		stale, maxLag, wait := st.feedStale, st.maxLag, st.poll
		st.mu.Unlock()
		if stale && !wasStale {
			st.purge(func(*cacheEntry) bool { return true })
			st.errs.Error("revocation feed unread for longer than revocationMaxLag: refusing every token (503) until it answers",
				"issuer", st.issuer, "lag", lag.Round(time.Second).String(), "revocationMaxLag", maxLag.String(), "error", err)
		}
		if err != nil {
			if failingSince.IsZero() {
				failingSince, lastReport = now, now
				st.errs.Error("cannot read the revocation feed; retrying at every poll, and revoked tokens stay accepted until it answers",
					"issuer", st.issuer, "lag", lag.Round(time.Second).String(), "error", err)
			} else if now.Sub(lastReport) >= time.Minute {
				lastReport = now
				st.errs.Error("revocation feed still unreadable; revoked tokens stay accepted", "issuer", st.issuer,
					"lag", lag.Round(time.Second).String(), "failing_for", now.Sub(failingSince).Round(time.Second).String(), "error", err)
			}
		} else if !failingSince.IsZero() {
			st.info.Info("revocation feed readable again", "issuer", st.issuer, "failed_for", now.Sub(failingSince).Round(time.Second).String())
			failingSince = time.Time{}
		}
		if wait == 0 {
			wait = 5 * time.Second
			// The feed may ask for another pace; keep it within reason.
			if hint >= 1 && hint <= 300 {
				wait = time.Duration(hint * float64(time.Second))
			}
		}
		if !st.sleep(wait) {
			return
		}
	}
}

// lagLocked is how long the revocation set has gone without a complete read of the feed (since start, before the
// first). The caller holds mu.
func (st *issuerState) lagLocked(now time.Time) time.Duration {
	if st.feedReadAt.IsZero() {
		return now.Sub(st.startedAt)
	}
	return now.Sub(st.feedReadAt)
}

// feedLag reports how long the issuer's revocation set has gone without a complete read of its feed, and whether
// the last attempt failed.
func (st *issuerState) feedLag() (time.Duration, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.lagLocked(time.Now()), !st.feedOK
}

// pollFeed reads the revocation feed from the current cursor to its end, page after page, and applies it; it
// returns the feed's poll_interval. A read from 0 (the first, or after the store was restored or replaced) is the
// whole list of revocations still relevant: it is collected over all its pages and replaces the set at once. Later
// reads add each page as it arrives, so a failure half-way loses nothing already read.
func (st *issuerState) pollFeed() (float64, error) {
	u, err := st.feedEndpoint()
	if err != nil {
		return 0, err
	}
	st.mu.RLock()
	since := st.cursor
	st.mu.RUnlock()
	full := since == 0
	restarted := false
	var collected []feedEntry
	var hint float64
	for pages := 0; ; pages++ {
		if pages == maxFeedPages {
			return 0, fmt.Errorf("revocation feed %s: more than %d pages in one poll", u, maxFeedPages)
		}
		page, err := st.readFeed(u, since)
		if err != nil {
			return 0, err
		}
		hint = page.PollInterval
		if page.Cursor < since {
			// The store was restored or replaced: start over from the beginning, once per poll.
			if restarted {
				return 0, fmt.Errorf("revocation feed %s: the cursor went back twice in one poll", u)
			}
			restarted, full, since = true, true, 0
			collected = collected[:0] // (not "= nil" in the tuple above: Yaegi 0.16 cannot assign an untyped nil there)
			continue
		}
		entries := feedEntries(page)
		if full {
			collected = append(collected, entries...)
		} else {
			st.applyFeed(entries, page.Cursor, false)
		}
		if !page.More {
			since = page.Cursor
			break
		}
		if page.Cursor <= since {
			return 0, fmt.Errorf("revocation feed %s: a page with more to come did not move the cursor past %d", u, since)
		}
		since = page.Cursor
	}
	if full {
		st.applyFeed(collected, since, true)
	}
	return hint, nil
}

// feedEntry is one revoked jti with its token's exp.
type feedEntry struct {
	jti string
	exp int64
}

func feedEntries(page *feedPage) []feedEntry {
	out := make([]feedEntry, 0, len(page.Revoked))
	for _, r := range page.Revoked {
		if r.Jti != "" {
			out = append(out, feedEntry{jti: r.Jti, exp: r.Exp})
		}
	}
	return out
}

// applyFeed adds entries to the revocation set (replace: they are the whole set), moves the cursor, drops entries
// an hour past their exp, and purges the cached verdicts of newly revoked jtis.
func (st *issuerState) applyFeed(entries []feedEntry, cursor int64, replace bool) {
	now := time.Now().Unix()
	fresh := map[string]bool{}
	st.mu.Lock()
	if replace {
		next := make(map[string]int64, len(entries))
		for _, e := range entries {
			if _, known := st.revoked[e.jti]; !known {
				fresh[e.jti] = true
			}
			next[e.jti] = e.exp
		}
		st.revoked = next
	} else {
		for _, e := range entries {
			if _, known := st.revoked[e.jti]; !known {
				fresh[e.jti] = true
			}
			st.revoked[e.jti] = e.exp
		}
	}
	for jti, exp := range st.revoked {
		if exp != 0 && exp < now-3600 {
			delete(st.revoked, jti)
		}
	}
	st.cursor = cursor
	st.mu.Unlock()
	if len(fresh) > 0 {
		for _, c := range st.allCaches() {
			c.purgeJtis(fresh)
		}
	}
}

func (st *issuerState) readFeed(u string, since int64) (*feedPage, error) {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	body, err := st.get(u + sep + "since=" + strconv.FormatInt(since, 10))
	if err != nil {
		return nil, err
	}
	var page feedPage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("revocation feed %s is not JSON: %w", u, err)
	}
	return &page, nil
}

func (st *issuerState) isRevoked(jti string) bool {
	st.mu.RLock()
	_, ok := st.revoked[jti]
	st.mu.RUnlock()
	return ok
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
