package oauth

import (
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/connections"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// The account page (/account): after a login as for the gateway, a user sees their connected accounts and the
// applications they authorized, and disconnects or revokes them. The page's session is a record in the store under
// the hash of a random cookie (HttpOnly, SameSite=Lax, __Host- on https), alive --login-timeout; every change is a
// POST carrying the session's CSRF token.

const accountCookieName = "mcpgw_account"

func (s *Server) accountCookie() string {
	if s.secure {
		return "__Host-" + accountCookieName
	}
	return accountCookieName
}

// accountSessionID is the store id of the session whose cookie holds token: only its hash is stored.
func accountSessionID(token string) string { return "account:" + store.HashSecret(token) }

// accountSession returns the page's session of this browser, or nil.
func (s *Server) accountSession(r *http.Request) (*store.AuthRequest, error) {
	c, err := r.Cookie(s.accountCookie())
	if err != nil || c.Value == "" {
		return nil, nil
	}
	sess, err := s.store.GetAuthRequest(r.Context(), accountSessionID(c.Value))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !sess.Account || sess.User == nil {
		return nil, nil
	}
	return sess, nil
}

// accountPage is GET /account: the page, or the login that leads to it.
func (s *Server) accountPage(w http.ResponseWriter, r *http.Request) {
	sess, err := s.accountSession(r)
	if err != nil {
		s.storeFailedPage(w, r, err)
		return
	}
	if sess == nil {
		// A login stores a request until it expires, and anyone may ask: bounded per address like /authorize.
		if !s.allowFrom(s.authorizeLimit, r) {
			w.Header().Set("Retry-After", "60")
			s.errorPage(w, http.StatusTooManyRequests, "Too many requests", "Too many sign-ins came from your network. Wait a minute, then open the page again.")
			return
		}
		now := s.now()
		s.startLogin(w, r, &store.AuthRequest{ID: randomToken(24), Account: true, CreatedAt: now, ExpiresAt: now.Add(s.cfg.AuthRequestTTL)})
		return
	}
	ctx := r.Context()
	type connRow struct {
		Upstream, Name, Scope string
		Since                 string
	}
	type grantRow struct {
		ClientID, Client, Scope, Resource, LastUsed string
	}
	var connected, available []connRow
	if s.cfg.Connections != nil {
		conns, err := s.cfg.Connections.List(ctx, sess.User.ID)
		if err != nil {
			s.storeFailedPage(w, r, err)
			return
		}
		have := map[string]bool{}
		for _, c := range conns {
			name := c.Upstream
			if up, ok := s.cfg.Connections.Upstream(c.Upstream); ok {
				name = up.DisplayName
			}
			have[c.Upstream] = true
			connected = append(connected, connRow{Upstream: c.Upstream, Name: name, Scope: c.Scope, Since: c.CreatedAt.Format(time.DateOnly)})
		}
		for _, up := range s.cfg.Connections.Upstreams() {
			if !have[up.Name] {
				available = append(available, connRow{Upstream: up.Name, Name: up.DisplayName})
			}
		}
	}
	grants, err := s.store.UserGrants(ctx, sess.User.ID)
	if err != nil {
		s.storeFailedPage(w, r, err)
		return
	}
	var rows []grantRow
	seen := map[string]bool{} // one row per application: revoking is per application
	for _, g := range grants {
		if seen[g.ClientID] {
			continue
		}
		seen[g.ClientID] = true
		name := g.ClientID
		if c, err := s.store.GetClient(ctx, g.ClientID); err == nil && c.Name != "" {
			name = c.Name
		}
		rows = append(rows, grantRow{ClientID: g.ClientID, Client: name, Scope: g.Scope, Resource: g.Resource,
			LastUsed: g.LastIssuedAt.UTC().Format("2006-01-02 15:04 UTC")})
	}
	s.render(w, http.StatusOK, accountPageTemplate, map[string]any{
		"User": sess.User.Login, "Provider": s.providerName(*sess.User), "CSRF": sess.CSRFToken,
		"Connected": connected, "Available": available, "Grants": rows,
	})
}

// accountAction is POST /account: action disconnect (upstream), connect (upstream), revoke (client_id) or
// revoke_all, with the session's CSRF token.
func (s *Server) accountAction(w http.ResponseWriter, r *http.Request) {
	sess, err := s.accountSession(r)
	if err != nil {
		s.storeFailedPage(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if sess == nil || r.ParseForm() != nil || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.CSRFToken)) != 1 {
		s.errorPage(w, http.StatusForbidden, "Session expired", "Your session on this page has ended, or the form did not come from it. Open the account page again.")
		return
	}
	ctx, user := r.Context(), sess.User
	switch r.PostFormValue("action") {
	case "disconnect":
		if s.cfg.Connections == nil {
			break
		}
		name := r.PostFormValue("upstream")
		err := s.cfg.Connections.Disconnect(ctx, user.ID, name)
		if err != nil && !errors.Is(err, connections.ErrNotConnected) {
			s.storeFailedPage(w, r, err)
			return
		}
		if err == nil {
			s.record(ctx, withUser(audit.Event{Name: eventConnDeleted, Outcome: audit.OutcomeSuccess, Upstream: name,
				Reason: "by the user on the account page"}, user))
		}
	case "connect":
		name := r.PostFormValue("upstream")
		if s.cfg.Connections == nil {
			break
		}
		if _, ok := s.cfg.Connections.Upstream(name); !ok {
			s.errorPage(w, http.StatusBadRequest, "Unknown service", "This server connects no service of that name.")
			return
		}
		now := s.now()
		u := *user
		ar := &store.AuthRequest{ID: randomToken(24), Connect: &store.ConnectIntent{Upstream: name}, User: &u,
			CreatedAt: now, ExpiresAt: now.Add(s.cfg.AuthRequestTTL)}
		http.SetCookie(w, &http.Cookie{Name: s.authCookie(), Value: ar.ID, Path: "/", HttpOnly: true, Secure: s.secure,
			SameSite: http.SameSiteLaxMode, MaxAge: int(s.cfg.AuthRequestTTL.Seconds())})
		s.toUpstream(w, r, ar)
		return
	case "revoke":
		client := r.PostFormValue("client_id")
		grants, err := s.store.UserGrants(ctx, user.ID)
		if err != nil {
			s.storeFailedPage(w, r, err)
			return
		}
		n := 0
		for _, g := range grants {
			if g.ClientID == client {
				if err := s.store.RevokeFamily(ctx, g.FamilyID); err != nil {
					s.storeFailedPage(w, r, err)
					return
				}
				n++
			}
		}
		s.log.InfoContext(ctx, "grants revoked by their user", "user", user.ID, "client_id", client, "grants", n)
		s.record(ctx, withUser(audit.Event{Name: eventGrantRevoked, Outcome: audit.OutcomeSuccess, ClientID: client,
			Reason: "by the user on the account page", Count: n}, user))
	case "revoke_all":
		n, err := s.store.RevokeUser(ctx, user.ID)
		if err != nil {
			s.storeFailedPage(w, r, err)
			return
		}
		s.log.InfoContext(ctx, "grants revoked by their user", "user", user.ID, "grants", n)
		s.record(ctx, withUser(audit.Event{Name: eventGrantRevoked, Outcome: audit.OutcomeSuccess,
			Reason: "by the user on the account page: every application", Count: n}, user))
	default:
		s.errorPage(w, http.StatusBadRequest, "Unknown action", "The form asked for something this page does not do.")
		return
	}
	http.Redirect(w, r, s.cfg.Issuer+"/account", http.StatusSeeOther)
}

// accountEnding opens the account page's session once the user has logged in.
type accountEnding struct{ s *Server }

func (e accountEnding) approved(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	s := e.s
	_ = s.store.DeleteAuthRequest(r.Context(), ar.ID)
	http.SetCookie(w, &http.Cookie{Name: s.authCookie(), Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure})
	token, now := randomToken(32), s.now()
	sess := &store.AuthRequest{ID: accountSessionID(token), Account: true, User: ar.User, CSRFToken: randomToken(24),
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.AuthRequestTTL)}
	if err := s.store.PutAuthRequest(r.Context(), sess); err != nil {
		s.storeFailedPage(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.accountCookie(), Value: token, Path: "/", HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(s.cfg.AuthRequestTTL.Seconds())})
	http.Redirect(w, r, s.cfg.Issuer+"/account", http.StatusSeeOther)
}

func (e accountEnding) denied(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	e.cancelled(w, r, ar, "the identity provider")
}

func (e accountEnding) cancelled(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, display string) {
	_ = e.s.store.DeleteAuthRequest(r.Context(), ar.ID)
	e.s.errorPage(w, http.StatusForbidden, "Login cancelled", "The "+display+" login was cancelled. Open the account page again to retry.")
}

func (e accountEnding) notAllowed(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, display, reason string) {
	_ = e.s.store.DeleteAuthRequest(r.Context(), ar.ID)
	e.s.errorPage(w, http.StatusForbidden, "Access refused", reason+" Ask the gateway's operator to allow your "+display+" account.")
}

func (accountEnding) mayRemember() bool { return false }

var accountPageTemplate = template.Must(template.New("account").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Your account</title>` + pageStyle + `<style>table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem .4rem;
border-bottom:1px solid #ddd;vertical-align:top}form{display:inline}</style></head><body>
<h1>Your account</h1><p>Signed in as <b>{{.User}}</b> ({{.Provider}}).</p>
<h2>Connected accounts</h2>
<div class="box" id="connections">{{if .Connected}}<table><tr><th>Service</th><th>Scopes</th><th>Since</th><th></th></tr>
{{range .Connected}}<tr data-upstream="{{.Upstream}}"><td>{{.Name}}</td><td>{{.Scope}}</td><td>{{.Since}}</td><td>
<form method="post" action="account"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="action" value="disconnect">
<input type="hidden" name="upstream" value="{{.Upstream}}"><button type="submit">Disconnect</button></form></td></tr>
{{end}}</table>{{else}}<p>No account connected.</p>{{end}}
{{range .Available}}<form method="post" action="account"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="action" value="connect">
<input type="hidden" name="upstream" value="{{.Upstream}}"><button type="submit" data-connect="{{.Upstream}}">Connect {{.Name}}</button></form>
{{end}}</div>
<h2>Applications you authorized</h2>
<div class="box" id="grants">{{if .Grants}}<table><tr><th>Application</th><th>Scopes</th><th>Last used</th><th></th></tr>
{{range .Grants}}<tr data-client="{{.ClientID}}"><td>{{.Client}}<br><small>{{.Resource}}</small></td><td>{{.Scope}}</td><td>{{.LastUsed}}</td><td>
<form method="post" action="account"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="action" value="revoke">
<input type="hidden" name="client_id" value="{{.ClientID}}"><button type="submit">Revoke</button></form></td></tr>
{{end}}</table>
<form method="post" action="account"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="action" value="revoke_all">
<button type="submit" id="revoke-all">Revoke every application</button></form>{{else}}<p>No application holds access.</p>{{end}}</div>
</body></html>`))
