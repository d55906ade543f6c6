package oauth

import (
	"net/http"
	"strconv"
)

// FeedPageSize is the most entries one answer of the revocation feed holds (about 50 KiB of JSON). A reader follows
// the cursor while the answer says more; so no answer grows with the feed, however many tokens are revoked at once.
const FeedPageSize = 1000

// feed is GET /revocations: the revoked access-token jtis the plugin polls, a page at a time (docs/architecture.md).
func (s *Server) feed(w http.ResponseWriter, r *http.Request) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			oauthError(w, http.StatusBadRequest, "invalid_request", "since must be a cursor from a previous answer")
			return
		}
		since = n
	}
	entries, cursor, more, err := s.store.RevokedPage(r.Context(), since, FeedPageSize)
	if err != nil {
		s.storeFailed(w, r, "read revocation feed", err)
		return
	}
	type entry struct {
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	}
	out := make([]entry, 0, len(entries))
	for _, e := range entries {
		out = append(out, entry{e.JTI, e.ExpiresAt.Unix()})
	}
	body := map[string]any{"cursor": cursor, "revoked": out, "poll_interval": int(s.cfg.FeedPollInterval.Seconds())}
	if more {
		body["more"] = true
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

// FeedHandler serves the revocation feed alone (and /health), for a listener of its own on an internal address
// (Config.SeparateFeed): the feed is for the gateway's plugins, not for the Internet.
func (s *Server) FeedHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /revocations", s.feed)
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		oauthError(w, http.StatusNotFound, "not_found", "this listener serves the revocation feed (/revocations) only")
	})
	return mux
}
