package plugin

// The issuer's revocation set, kept from its revocation feed (docs/architecture.md, Revocation feed). A verdict
// asks it through issuer.go (isRevoked, recheck).

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

func (st *issuerState) feedEndpoint() (string, error) { return st.endpoint(st.feedConf, &st.feedURL) }

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
			wait = defaultFeedPoll
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

// feedLag is how long the issuer's revocation set has gone without a complete read of its feed.
func (st *issuerState) feedLag() time.Duration {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.lagLocked(time.Now())
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
