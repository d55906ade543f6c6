package oauth

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// startLogin stores an authorization (or device) request, binds it to this browser, and starts the login: straight
// to the identity provider when there is one, else to a page where the user chooses.
func (s *Server) startLogin(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	var to string
	if providers := s.login.Providers(); len(providers) == 1 {
		var ok bool
		if to, ok = s.beginLogin(w, r, ar, providers[0].Name()); !ok {
			return
		}
	} else if err := s.store.PutAuthRequest(r.Context(), ar); err != nil {
		s.storeFailedPage(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.authCookie(), Value: ar.ID, Path: "/", HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(s.cfg.AuthRequestTTL.Seconds())})
	if to != "" {
		http.Redirect(w, r, to, http.StatusFound)
		return
	}
	s.showChooser(w, ar)
}

// showChooser is the plain page that lists the identity providers, each a link to GET /login.
func (s *Server) showChooser(w http.ResponseWriter, ar *store.AuthRequest) {
	type option struct{ Name, Link string }
	var options []option
	for _, p := range s.login.Providers() {
		q := url.Values{"request": {ar.ID}, "provider": {p.Name()}}
		options = append(options, option{Name: p.DisplayName(), Link: s.cfg.Issuer + "/login?" + q.Encode()})
	}
	s.render(w, http.StatusOK, chooserPage, map[string]any{"Providers": options, "Device": shownUserCode(ar)})
}

// chooseLogin is GET /login?request=...&provider=...: the chooser's links. It starts a round trip to the provider
// for a request bound to this browser; choosing again replaces the earlier attempt.
func (s *Server) chooseLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ar, ok := s.boundRequest(w, r, q.Get("request"))
	if !ok {
		return
	}
	if _, known := s.login.Provider(q.Get("provider")); !known {
		s.errorPage(w, http.StatusBadRequest, "Unknown sign-in option", "This server offers no such way to sign in. Go back and choose one of the options listed.")
		return
	}
	if to, ok := s.beginLogin(w, r, ar, q.Get("provider")); ok {
		http.Redirect(w, r, to, http.StatusFound)
	}
}

// beginLogin starts ar's round trip to provider and stores ar with it. It returns where to send the browser, or
// false when it has answered a failure.
func (s *Server) beginLogin(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, provider string) (string, bool) {
	to, err := s.login.Begin(r.Context(), ar, provider)
	if errors.Is(err, login.ErrNeedsUser) {
		name := provider
		if p, ok := s.login.Provider(provider); ok {
			name = p.DisplayName()
		}
		s.silentFailure(w, r, ar, "login_required", name+" cannot sign the user in without showing a page: retry without prompt=none")
		return "", false
	}
	if errors.Is(err, login.ErrUnavailable) {
		s.log.WarnContext(r.Context(), "identity provider unreachable: login refused", "provider", provider, "err", err)
		name := provider
		if p, ok := s.login.Provider(provider); ok {
			name = p.DisplayName()
		}
		w.Header().Set("Retry-After", "30")
		s.errorPage(w, http.StatusServiceUnavailable, "Login unavailable", "Signing in with "+name+" is not possible right now: "+
			"this server cannot reach it. Try again in a minute, or start over from your application and choose another way to sign in.")
		return "", false
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "start the login", "provider", provider, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Login unavailable", "The login could not be started. Try again from your application.")
		return "", false
	}
	if err := s.store.PutAuthRequest(r.Context(), ar); err != nil {
		s.storeFailedPage(w, r, err)
		return "", false
	}
	return to, true
}

// loginCallback is where provider name returns the user (its CallbackPath).
func (s *Server) loginCallback(name string) http.HandlerFunc {
	p, _ := s.login.Provider(name)
	display := p.DisplayName()
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		ar, ok := s.boundRequest(w, r, q.Get("state"))
		if !ok {
			return
		}
		if e := q.Get("error"); e != "" {
			if ar.Login.Provider != "" && ar.Login.Provider != name {
				// Only the provider this login went to may cancel it.
				s.errorPage(w, http.StatusBadRequest, "Login not started here", "This browser did not start a "+display+
					" login for this request, or chose another way to sign in since. Start again from your application.")
				return
			}
			s.record(r.Context(), audit.Event{Name: eventLogin, Outcome: audit.OutcomeDenied, Provider: name,
				ClientID: ar.ClientID, Reason: "cancelled at the provider"})
			if ar.Silent {
				s.silentFailure(w, r, ar, "login_required", display+" could not sign the user in without showing a page: "+
					"retry without prompt=none")
				return
			}
			s.endingOf(ar).cancelled(w, r, ar, display)
			return
		}
		user, err := s.login.Finish(r.Context(), name, q, ar)
		var denied *login.DeniedError
		switch {
		case errors.As(err, &denied):
			s.log.InfoContext(r.Context(), "login refused", "provider", name, "login", denied.Login, "reason", denied.Reason)
			s.cfg.Metrics.Login("denied")
			s.record(r.Context(), audit.Event{Name: eventLogin, Outcome: audit.OutcomeDenied, Provider: name,
				ClientID: ar.ClientID, UserLogin: denied.Login, Reason: denied.Reason})
			if ar.Silent {
				s.silentFailure(w, r, ar, "access_denied", "the user is not allowed to use this server")
				return
			}
			s.endingOf(ar).notAllowed(w, r, ar, display, denied.Reason)
			return
		case errors.Is(err, login.ErrReplayed):
			// The same attempt came back twice: a reloaded or replayed callback, or an ID token whose nonce was used.
			s.log.WarnContext(r.Context(), "login refused: the attempt was already finished", "provider", name)
			s.cfg.Metrics.Login("failed")
			s.record(r.Context(), audit.Event{Name: eventLogin, Outcome: audit.OutcomeFailure, Provider: name,
				ClientID: ar.ClientID, Reason: "the attempt was already finished (a replayed callback)"})
			s.errorPage(w, http.StatusBadRequest, "Login already used", "This "+display+" login was already completed once and "+
				"cannot be used again. Start again from your application.")
			return
		case errors.Is(err, login.ErrNotStarted), errors.Is(err, login.ErrWrongProvider):
			s.log.WarnContext(r.Context(), "login refused: no login to this provider is under way", "provider", name, "err", err)
			s.record(r.Context(), audit.Event{Name: eventLogin, Outcome: audit.OutcomeFailure, Provider: name,
				ClientID: ar.ClientID, Reason: "no login to this provider is under way"})
			s.errorPage(w, http.StatusBadRequest, "Login not started here", "This browser did not start a "+display+
				" login for this request, or chose another way to sign in since. Start again from your application.")
			return
		case errors.Is(err, store.ErrUnavailable):
			s.storeFailedPage(w, r, err)
			return
		case err != nil:
			s.log.WarnContext(r.Context(), "login failed", "provider", name, "err", err)
			s.cfg.Metrics.Login("failed")
			s.record(r.Context(), audit.Event{Name: eventLogin, Outcome: audit.OutcomeFailure, Provider: name,
				ClientID: ar.ClientID, Reason: "the provider did not confirm the login"})
			s.errorPage(w, http.StatusBadGateway, display+" login failed", display+" did not confirm the login. Go back to your application and try again.")
			return
		}
		s.cfg.Metrics.Login("allowed")
		s.record(r.Context(), withUser(audit.Event{Name: eventLogin, Outcome: audit.OutcomeSuccess, Provider: name,
			ClientID: ar.ClientID}, user))
		ar.User = user
		ar.CSRFToken = randomToken(24) // a fresh token for the consent form, now bound to this user
		if err := s.store.PutAuthRequest(r.Context(), ar); err != nil {
			s.storeFailedPage(w, r, err)
			return
		}
		if !forClient(ar) {
			s.endingOf(ar).approved(w, r, ar) // logged in is all a connect or account request needed
			return
		}
		client, err := s.lookupClient(r.Context(), ar.ClientID)
		if err != nil {
			s.errorPage(w, http.StatusBadRequest, "Unknown application", "The application's registration is gone. Add the server to your application again.")
			return
		}
		// A user who approved this client for these scopes and this resource before is not asked again; except when
		// the client asks for the page (prompt=consent), for a device, where the consent page is what tells the user
		// which device they are letting in (RFC 8628 §5.4), and for a public client on a loopback redirect, which any
		// local program can pose as.
		// A wider scope than approved (a step-up) is never granted without the page, prompt=none or not.
		past, err := s.store.GetConsent(r.Context(), user.ID, client.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.storeFailedPage(w, r, err)
			return
		}
		if err != nil || past.Resource != ar.Resource {
			past = nil
		}
		if past != nil && !past.NotRemembered && !ar.AskConsent && !consentAlwaysAsked(client, ar) && covers(past.Scope, ar.Scope) {
			s.record(r.Context(), consentEvent(ar, audit.OutcomeSuccess, "remembered from an earlier approval"))
			s.endingOf(ar).approved(w, r, ar)
			return
		}
		if ar.Silent {
			s.silentFailure(w, r, ar, "consent_required", "the user has not approved this application for this scope and "+
				"resource, or must approve it every time: retry without prompt=none")
			return
		}
		approved := ""
		if past != nil {
			approved = past.Scope
		}
		s.showConsent(w, ar, client, approved)
	}
}

// signInWith names the ways to sign in for the device page: "GitHub", "GitHub or Google".
func (s *Server) signInWith() string {
	var names []string
	for _, p := range s.login.Providers() {
		names = append(names, p.DisplayName())
	}
	if len(names) <= 2 {
		return strings.Join(names, " or ")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// providerName is what users read for the provider a user logged in with.
func (s *Server) providerName(u store.User) string {
	if p, ok := s.login.Provider(login.ProviderOf(u)); ok {
		return p.DisplayName()
	}
	return login.ProviderOf(u)
}

var chooserPage = template.Must(template.New("chooser").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sign in</title>` + pageStyle + `<style>a.provider{display:block;margin:.5rem 0;padding:.6rem 1rem;border:1px solid #888;
border-radius:6px;text-decoration:none;color:#222}a.provider:hover{background:#f3f3f3}</style></head><body>
<h1>Sign in to use an MCP server</h1>
{{if .Device}}<p>To approve the device showing the code <span class="host">{{.Device}}</span>, first sign in.</p>{{end}}
<div class="box"><p>Choose how to sign in:</p>
{{range .Providers}}<a class="provider" href="{{.Link}}">Continue with {{.Name}}</a>
{{end}}</div></body></html>`))
