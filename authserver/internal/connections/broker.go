package connections

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
)

// Broker is POST /connections/token, the endpoint streamproxy asks for a user's upstream token (the contract in
// docs/connections.md). It belongs on the internal listener only, and answers only callers holding secret.
func (s *Service) Broker(secret string) http.Handler {
	want := sha256.Sum256([]byte(secret))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(bearer)) // equal lengths: the compare takes the same time for any guess
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			answer(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client"})
			return
		}
		var req struct {
			User     string `json:"user"`
			Upstream string `json:"upstream"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			answer(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "the body is JSON: {\"user\": ..., \"upstream\": ...}"})
			return
		}
		up, known := s.upstreams[req.Upstream]
		if !known {
			answer(w, http.StatusBadRequest, map[string]any{"error": "unknown_upstream", "upstream": req.Upstream,
				"error_description": "no upstream of this name is configured at the authserver (--upstreams)"})
			return
		}
		if !login.ValidUserID(req.User) {
			answer(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "user is not a user id of this authserver (the access token's sub)"})
			return
		}
		t, err := s.Token(r.Context(), req.User, req.Upstream)
		switch {
		case errors.Is(err, ErrNotConnected):
			answer(w, http.StatusNotFound, map[string]any{"error": "not_connected", "upstream": up.Name,
				"display_name": up.DisplayName, "connect_url": s.ConnectURL(req.User, up.Name)})
		case errors.Is(err, ErrUpstreamUnavailable):
			answer(w, http.StatusBadGateway, map[string]any{"error": "upstream_unavailable", "upstream": up.Name})
		case err != nil:
			s.cfg.Log.ErrorContext(r.Context(), "connection token unavailable", "user", req.User, "upstream", up.Name, "err", err)
			answer(w, http.StatusServiceUnavailable, map[string]any{"error": "temporarily_unavailable"})
		default:
			exp := int64(0)
			if !t.ExpiresAt.IsZero() {
				exp = t.ExpiresAt.Unix()
			}
			answer(w, http.StatusOK, map[string]any{"access_token": t.AccessToken, "token_type": t.TokenType, "expires_at": exp})
		}
	})
}

func answer(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(body); err != nil {
		slog.Debug("broker answer not written", "err", err)
	}
}
