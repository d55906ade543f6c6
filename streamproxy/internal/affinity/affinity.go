// Package affinity lets several streamproxy replicas share one MCP service behind any load balancer: each user
// belongs to one replica, chosen by rendezvous hashing of the identity header over the configured peers, and a
// replica that receives another replica's user passes the request on. A user's processes (their sessions, their
// 2026-07-28 worker and its state, a multi round-trip call waiting for input) therefore live on one replica, whatever
// replica the load balancer picked.
package affinity

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
)

// forwardedHeader marks a request a peer passed on, so that it is served where it lands and never loops.
const forwardedHeader = "X-Streamproxy-Forwarded"

// Handler serves the users that belong to self and passes every other request to the peer its user belongs to.
// peers lists every replica's base URL, self among them; with fewer than two peers it returns next.
func Handler(next http.Handler, peers []string, self, userHeader string, log *slog.Logger) (http.Handler, error) {
	if len(peers) < 2 {
		return next, nil
	}
	if !slices.Contains(peers, self) {
		return nil, fmt.Errorf("--self %q is not one of --peers %s", self, strings.Join(peers, ","))
	}
	proxies := map[string]*httputil.ReverseProxy{}
	for _, p := range peers {
		u, err := url.Parse(p)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("peer %q is not a base URL such as http://streamproxy-2:8080", p)
		}
		rp := &httputil.ReverseProxy{
			Rewrite: func(r *httputil.ProxyRequest) {
				r.SetURL(u)
				r.Out.Host = r.In.Host
				r.Out.Header.Set(forwardedHeader, self)
			},
			FlushInterval: -1, // SSE: every event goes on at once
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				log.WarnContext(r.Context(), "peer unreachable", "peer", p, "err", err)
				w.Header().Set("Retry-After", "5")
				http.Error(w, "the replica that serves this user is unreachable", http.StatusBadGateway)
			},
		}
		proxies[p] = rp
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(forwardedHeader) != "" {
			next.ServeHTTP(w, r)
			return
		}
		owner := Owner(peers, r.Header.Get(userHeader))
		if owner == self {
			next.ServeHTTP(w, r)
			return
		}
		proxies[owner].ServeHTTP(w, r)
	}), nil
}

// Owner returns the peer a user belongs to: the highest hash of peer and user (rendezvous hashing), so that adding
// or removing a peer moves only the users of that peer.
func Owner(peers []string, user string) string {
	var best string
	var top uint64
	for _, p := range peers {
		h := fnv.New64a()
		h.Write([]byte(p))
		h.Write([]byte{0})
		h.Write([]byte(user))
		if s := h.Sum64(); best == "" || s > top {
			best, top = p, s
		}
	}
	return best
}
