// Package affinity lets several streamproxy replicas share one MCP service behind any load balancer: each user
// belongs to one replica, chosen by rendezvous hashing of the identity header over the configured peers, and a
// replica that receives another replica's user passes the request on. A user's processes (their sessions, their
// 2026-07-28 worker and its state, a multi round-trip call waiting for input) therefore live on one replica, whatever
// replica the load balancer picked.
//
// Only a replica may say that it passed a request on: the hop carries a proof keyed with the secret the replicas
// share with the gateway, and a request marked as forwarded without a valid one is refused. Otherwise a caller could
// pick the replica that serves it (multiplying its per-user limits by the number of replicas and splitting its
// state), or be served by a replica the user does not belong to.
package affinity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ForwardedHeader marks a request a peer passed on, so that it is served where it lands and never loops. Its value
// is the proof that a replica sent it (see Proof).
const ForwardedHeader = "X-Streamproxy-Forwarded"

// proofValidity is how far a proof's time may be from the receiving replica's clock: a hop takes milliseconds, the
// rest allows for clocks that differ.
const proofValidity = 30 * time.Second

// Config says which replicas share the service and how they recognise each other.
type Config struct {
	Peers      []string // every replica's base URL, Self among them; fewer than two: no forwarding
	Self       string
	UserHeader string // the identity header the owner of a request is chosen by
	Secret     string // keys the proofs; required with Peers
	Log        *slog.Logger
}

// Handler serves the users that belong to this replica and passes every other request to the peer its user belongs
// to. A request marked as forwarded is served here if its proof is valid, and refused (403) otherwise, with or
// without peers.
func Handler(next http.Handler, cfg Config) (http.Handler, error) {
	forward := map[string]*httputil.ReverseProxy{}
	if len(cfg.Peers) >= 2 {
		if cfg.Secret == "" {
			return nil, errors.New("--peers needs --secret (STREAMPROXY_SECRET): a replica proves with it that it passed a request on")
		}
		if !slices.Contains(cfg.Peers, cfg.Self) {
			return nil, fmt.Errorf("--self %q is not one of --peers %s", cfg.Self, strings.Join(cfg.Peers, ","))
		}
		for _, p := range cfg.Peers {
			u, err := url.Parse(p)
			if err != nil || u.Scheme == "" || u.Host == "" {
				return nil, fmt.Errorf("peer %q is not a base URL such as http://streamproxy-2:8080", p)
			}
			forward[p] = &httputil.ReverseProxy{
				Rewrite: func(r *httputil.ProxyRequest) {
					r.SetURL(u)
					r.Out.Host = r.In.Host
					r.Out.Header.Set(ForwardedHeader, Proof(cfg.Secret, r.In.Header.Get(cfg.UserHeader), time.Now()))
				},
				FlushInterval: -1, // SSE: every event goes on at once
				ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
					cfg.Log.WarnContext(r.Context(), "peer unreachable", "peer", p, "err", err)
					w.Header().Set("Retry-After", "5")
					httpError(w, http.StatusBadGateway, "the replica that serves this user is unreachable")
				},
			}
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.Header.Get(cfg.UserHeader)
		if marks := r.Header.Values(ForwardedHeader); len(marks) > 0 {
			if len(marks) > 1 || cfg.Secret == "" || !Verify(cfg.Secret, user, marks[0], time.Now()) {
				cfg.Log.WarnContext(r.Context(), "refused a request marked as forwarded without a valid proof")
				httpError(w, http.StatusForbidden, ForwardedHeader+" is set by streamproxy replicas only, with a proof this one could not verify")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if owner := Owner(cfg.Peers, user); forward[owner] != nil && owner != cfg.Self {
			forward[owner].ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}

// httpError answers as the rest of streamproxy does: {"error": message}.
func httpError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message})
}

// Proof is the value of ForwardedHeader for a user's request passed on at a time: the time in Unix seconds and an
// HMAC-SHA256 of the time and the user keyed with the secret.
func Proof(secret, user string, at time.Time) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return ts + "." + base64.RawURLEncoding.EncodeToString(mac(secret, ts, user))
}

// Verify reports whether a proof was made with the secret for this user, within proofValidity of now.
func Verify(secret, user, proof string, now time.Time) bool {
	ts, sum, ok := strings.Cut(proof, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > proofValidity {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sum)
	return err == nil && hmac.Equal(got, mac(secret, ts, user))
}

func mac(secret, ts, user string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	// The label keeps these MACs apart from any other use of the secret.
	m.Write([]byte("streamproxy forwarded\x00" + ts + "\x00" + user))
	return m.Sum(nil)
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
