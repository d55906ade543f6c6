package oauth

import (
	"errors"
	"html/template"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/connections"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// The connect flow: a connect link (GET /connect/<upstream>?ticket=..., from the broker's not_connected answer)
// makes the person log in as for the gateway; only the user the link was made for goes on, to the upstream's
// authorization (state and PKCE), whose answer at /connect/<upstream>/callback becomes the user's connection. The
// account page starts the same round trip for its logged-in user without a link.

// connectStart is GET /connect/{upstream}.
func (s *Server) connectStart(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("upstream")
	up, ok := s.cfg.Connections.Upstream(name)
	if !ok {
		s.errorPage(w, http.StatusNotFound, "Unknown service", "This server connects no service of that name. Ask the application for a new link.")
		return
	}
	raw := r.URL.Query().Get("ticket")
	userID, err := s.cfg.Connections.ReadTicket(raw, name)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "Link not valid", "This link to connect "+up.DisplayName+" is not valid or has expired "+
			"(links last ten minutes and work once). Retry in your application to get a new one.")
		return
	}
	if !s.allowFrom(s.authorizeLimit, r) { // each opening stores a request until it expires
		w.Header().Set("Retry-After", "60")
		s.errorPage(w, http.StatusTooManyRequests, "Too many requests", "Too many sign-ins came from your network. Wait a minute, then open the link again.")
		return
	}
	now := s.now()
	ar := &store.AuthRequest{ID: randomToken(24), Connect: &store.ConnectIntent{Upstream: name, UserID: userID, Ticket: raw},
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.AuthRequestTTL)}
	s.startLogin(w, r, ar)
}

// toUpstream sends the logged-in user of ar on to the upstream's authorization page; ar is kept (bound to this
// browser by the login cookie) for the callback.
func (s *Server) toUpstream(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	verifier := oauth2.GenerateVerifier()
	ar.Connect.Verifier = verifier
	to, err := s.cfg.Connections.AuthCodeURL(r.Context(), ar.Connect.Upstream, ar.ID, verifier)
	if err != nil {
		s.log.WarnContext(r.Context(), "connect: upstream unavailable", "upstream", ar.Connect.Upstream, "err", err)
		s.errorPage(w, http.StatusBadGateway, "Service unavailable", "The service cannot be reached right now. Try again in a minute.")
		return
	}
	if err := s.store.PutAuthRequest(r.Context(), ar); err != nil {
		s.storeFailedPage(w, r, err)
		return
	}
	http.Redirect(w, r, to, http.StatusFound)
}

// connectCallback is GET /connect/{upstream}/callback, where the upstream returns the browser.
func (s *Server) connectCallback(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("upstream")
	up, ok := s.cfg.Connections.Upstream(name)
	if !ok {
		s.errorPage(w, http.StatusNotFound, "Unknown service", "This server connects no service of that name.")
		return
	}
	q := r.URL.Query()
	ar, ok := s.boundRequest(w, r, q.Get("state"))
	if !ok {
		return
	}
	if ar.Connect == nil || ar.Connect.Upstream != name || ar.Connect.Verifier == "" || ar.User == nil {
		s.errorPage(w, http.StatusBadRequest, "Not started here", "This browser did not start connecting "+up.DisplayName+
			" for this request. Start again from your application or your account page.")
		return
	}
	// The round trip ends here, whatever the answer: a second callback finds nothing.
	_ = s.store.DeleteAuthRequest(r.Context(), ar.ID)
	http.SetCookie(w, &http.Cookie{Name: s.authCookie(), Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure})
	if e := q.Get("error"); e != "" {
		s.log.InfoContext(r.Context(), "connect: the upstream answered an error", "upstream", name, "user", ar.User.ID, "error", e)
		// The upstream's error is logged, not shown: pages never reflect the query string.
		s.errorPage(w, http.StatusForbidden, up.DisplayName+" not connected", up.DisplayName+" did not grant access. "+
			"Nothing was stored. Retry from your application or your account page.")
		return
	}
	err := s.cfg.Connections.Finish(r.Context(), name, ar.User.ID, q.Get("code"), ar.Connect.Verifier)
	if errors.Is(err, store.ErrUnavailable) {
		s.storeFailedPage(w, r, err)
		return
	}
	if err != nil {
		s.log.WarnContext(r.Context(), "connect failed", "upstream", name, "user", ar.User.ID, "err", err)
		s.errorPage(w, http.StatusBadGateway, up.DisplayName+" not connected", up.DisplayName+" did not confirm the connection. "+
			"Retry from your application or your account page.")
		return
	}
	s.record(r.Context(), withUser(audit.Event{Name: eventConnCreated, Outcome: audit.OutcomeSuccess, Upstream: name}, ar.User))
	if ar.Connect.UserID == "" { // started from the account page: back there
		http.Redirect(w, r, s.cfg.Issuer+"/account", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, connectedPage, map[string]any{"Upstream": up.DisplayName, "User": ar.User.Login})
}

// connectEnding follows the login of a connect request: the logged-in user must be the link's, the link is used up,
// and the browser goes on to the upstream.
type connectEnding struct{ s *Server }

func (e connectEnding) approved(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	s := e.s
	if ar.Connect.UserID != ar.User.ID {
		s.log.WarnContext(r.Context(), "connect refused: another user logged in than the link's", "upstream", ar.Connect.Upstream,
			"user", ar.User.ID, "link_user", ar.Connect.UserID)
		e.end(w, r, ar, http.StatusForbidden, "Wrong account", "This link was made for another account than the one you signed in with ("+
			ar.User.Login+"). Sign in with the account you use in your application, or ask for a new link there.")
		return
	}
	if err := s.cfg.Connections.UseTicket(r.Context(), ar.Connect.Ticket); err != nil {
		if errors.Is(err, connections.ErrBadTicket) {
			e.end(w, r, ar, http.StatusBadRequest, "Link already used", "This link was used already or has expired. Retry in your application to get a new one.")
			return
		}
		s.storeFailedPage(w, r, err)
		return
	}
	if up, _ := s.cfg.Connections.Upstream(ar.Connect.Upstream); up.FromLogin && login.ProviderOf(*ar.User) == up.Name {
		// The login itself was the round trip: the provider's token became the connection.
		s.record(r.Context(), withUser(audit.Event{Name: eventConnCreated, Outcome: audit.OutcomeSuccess, Upstream: up.Name,
			Reason: "by the login"}, ar.User))
		_ = s.store.DeleteAuthRequest(r.Context(), ar.ID)
		http.SetCookie(w, &http.Cookie{Name: s.authCookie(), Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure})
		s.render(w, http.StatusOK, connectedPage, map[string]any{"Upstream": up.DisplayName, "User": ar.User.Login})
		return
	}
	s.toUpstream(w, r, ar)
}

func (e connectEnding) denied(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	e.end(w, r, ar, http.StatusForbidden, "Not connected", "Nothing was connected.")
}

func (e connectEnding) cancelled(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, display string) {
	e.end(w, r, ar, http.StatusForbidden, "Login cancelled", "The "+display+" login was cancelled; nothing was connected. "+
		"Open the link again to retry.")
}

func (e connectEnding) notAllowed(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, display, reason string) {
	e.end(w, r, ar, http.StatusForbidden, "Access refused", reason+" Ask the gateway's operator to allow your "+display+" account.")
}

func (connectEnding) mayRemember() bool { return false }

// end drops the request and its cookie and shows a page.
func (e connectEnding) end(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, status int, title, message string) {
	_ = e.s.store.DeleteAuthRequest(r.Context(), ar.ID)
	http.SetCookie(w, &http.Cookie{Name: e.s.authCookie(), Path: "/", MaxAge: -1, HttpOnly: true, Secure: e.s.secure})
	e.s.errorPage(w, status, title, message)
}

var connectedPage = template.Must(template.New("connected").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{{.Upstream}} connected</title>` + pageStyle + `</head><body><h1>{{.Upstream}} connected</h1>
<div class="box"><p>Your {{.Upstream}} account is connected for <b>{{.User}}</b>. You can close this tab and retry in your application.</p></div>
</body></html>`))
