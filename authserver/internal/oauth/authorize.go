package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/hostname"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/observe"
)

// authCookieName binds an authorization request to the browser that started it, so a login or consent cannot be
// completed in someone else's browser (login CSRF).
const authCookieName = "mcpgw_auth"

// authCookie is the cookie's name. On an https issuer it has the __Host- prefix: the browser then accepts it only
// from a secure origin, with Path=/ and no Domain, so no sibling subdomain can plant or overwrite it. A plain-http
// issuer (the dev stack at http://localhost) keeps the bare name: a __Host- cookie must be Secure, and not every
// browser stores a Secure cookie from http://localhost.
func (s *Server) authCookie() string {
	if s.secure {
		return "__Host-" + authCookieName
	}
	return authCookieName
}

// Bounds of what an authorization request may make the server store: the pending request lives
// in the store until the user finishes or it expires, and anyone may send one.
const (
	maxAuthorizeQuery = 8 << 10 // the whole query string of /authorize
	maxStateLen       = 1024    // state, which is stored and sent back as it is
	maxScopeLen       = 1024    // scope, as sent
	maxResourceLen    = 2048    // each resource, as sent
)

// authorize is GET /authorize (OAuth 2.1 §4.1.1).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > maxAuthorizeQuery {
		s.errorPage(w, http.StatusRequestURITooLong, "Request too long", "The application's authorization request is "+
			"longer than this server accepts. Nothing was sent to it: tell its authors, or try again from the application.")
		return
	}
	if !s.allowFrom(s.authorizeLimit, r) {
		w.Header().Set("Retry-After", "60")
		s.errorPage(w, http.StatusTooManyRequests, "Too many requests",
			"Too many authorization requests came from your network. Wait a minute, then start again from your application.")
		return
	}
	q := r.URL.Query()
	// The client and its redirect URI are checked first: until both are known good, errors are shown here and
	// never redirected (OAuth 2.1 §4.1.2.1), or this endpoint would be an open redirector.
	clientID := q.Get("client_id")
	if clientID == "" {
		s.errorPage(w, http.StatusBadRequest, "Missing client", "The request has no client_id. Start the connection again from your application.")
		return
	}
	client, err := s.lookupClient(r.Context(), clientID)
	if me, ok := asDocumentError(err); ok {
		s.errorPage(w, http.StatusBadRequest, "Application refused",
			"The application identifies itself by the metadata document at "+clientID+", which cannot be used: "+me.Reason+". Nothing was sent to it.")
		return
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && !client.ExpiresAt.IsZero() && time.Now().After(client.ExpiresAt)) {
		s.errorPage(w, http.StatusBadRequest, "Unknown application",
			"This application is not registered here, or its registration expired. Remove the server from your application and add it again so that it registers anew.")
		return
	}
	if err != nil {
		s.storeFailedPage(w, r, err)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" && len(client.RedirectURIs) == 1 {
		redirectURI = client.RedirectURIs[0]
	}
	if redirectURI == "" || !redirectAllowed(client.RedirectURIs, redirectURI) {
		s.errorPage(w, http.StatusBadRequest, "Unregistered redirect address",
			"The application asked to return to an address it did not register. Nothing was sent to it.")
		return
	}
	state := q.Get("state")
	if len(state) > maxStateLen {
		state = "" // not sent back: the client gets an error without it
	}
	fail := func(code, desc string) { s.failEarly(w, r, client, redirectURI, state, code, desc) }

	if len(q.Get("state")) > maxStateLen {
		fail("invalid_request", "state is longer than "+strconv.Itoa(maxStateLen)+" bytes")
		return
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	// PKCE with S256 is mandatory (OAuth 2.1 §4.1.1, MCP authorization): plain and missing challenges are refused.
	challenge := q.Get("code_challenge")
	if challenge == "" {
		fail("invalid_request", "code_challenge is required (PKCE with S256)")
		return
	}
	if q.Get("code_challenge_method") != "S256" {
		fail("invalid_request", "code_challenge_method must be S256")
		return
	}
	if len(challenge) != 43 || strings.Trim(challenge, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		fail("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier (43 characters)")
		return
	}
	if len(q.Get("scope")) > maxScopeLen {
		fail("invalid_scope", "scope is longer than "+strconv.Itoa(maxScopeLen)+" bytes")
		return
	}
	if slices.ContainsFunc(q["resource"], func(v string) bool { return len(v) > maxResourceLen }) {
		fail("invalid_target", "resource is longer than "+strconv.Itoa(maxResourceLen)+" bytes")
		return
	}
	scope, ignored := s.grantScope(q.Get("scope"), client)
	resource, problem := s.resolveResource(q["resource"])
	if problem != "" {
		fail("invalid_target", problem)
		return
	}
	if !slices.Contains(client.GrantTypes, "authorization_code") {
		fail("unauthorized_client", "this client is not registered for the authorization_code grant")
		return
	}
	// OpenID Connect Core §3.1.2.1. prompt=none forbids any page. This server keeps no login session of its own:
	// the request goes on only through an identity provider that can be asked the same (an OpenID provider, with
	// prompt=none), and ends in login_required or consent_required (§3.1.2.6) where a page would be needed.
	// prompt=consent shows the consent page even if the user approved before. login and select_account need nothing
	// more: every authorization signs in again.
	prompts := strings.Fields(q.Get("prompt"))
	silent := slices.Contains(prompts, "none")
	if silent && len(prompts) > 1 {
		fail("invalid_request", "prompt=none cannot be combined with other prompt values")
		return
	}
	if silent && len(s.login.Providers()) > 1 {
		fail("login_required", "this server offers several ways to sign in and the user must choose one: retry without prompt=none")
		return
	}

	if full, err := s.pendingFull(r.Context(), client.ID); err != nil {
		s.storeFailedPage(w, r, err)
		return
	} else if full {
		fail("temporarily_unavailable", "too many logins to this application are in progress here; try again in a few minutes")
		return
	}

	now := time.Now()
	ar := &store.AuthRequest{
		ID: randomToken(24), ClientID: client.ID, RedirectURI: redirectURI, State: state,
		CodeChallenge: challenge, Scope: scope, IgnoredScope: ignored, Resource: resource, CSRFToken: randomToken(24),
		AskConsent: slices.Contains(prompts, "consent"), Silent: silent, CreatedAt: now, ExpiresAt: now.Add(s.cfg.AuthRequestTTL),
	}
	s.startLogin(w, r, ar)
}

// pendingFull reports whether a client has as many authorization requests and device grants in flight as it may
// (Config.MaxPendingPerClient), so one client id cannot fill the store.
func (s *Server) pendingFull(ctx context.Context, clientID string) (bool, error) {
	if s.cfg.MaxPendingPerClient <= 0 {
		return false, nil
	}
	n, err := s.store.PendingCount(ctx, clientID)
	return n >= s.cfg.MaxPendingPerClient, err
}

// failEarly answers an error found before the user did anything. It goes back to the client (RFC 6749 §4.1.2.1)
// only when the redirect URI cannot be a stranger's web page: a loopback address (a program on the user's own
// machine) or a client the operator registered. A self-registered or metadata-document client's https redirect
// URI is whatever anybody chose, and sending the browser there unasked would make this server an open redirector
// (RFC 9700 §4.11.2): the error is shown here instead.
func (s *Server) failEarly(w http.ResponseWriter, r *http.Request, c *store.Client, redirectURI, state, code, desc string) {
	if isLoopbackURI(redirectURI) || operatorClient(c) {
		s.redirectError(w, r, redirectURI, state, code, desc)
		return
	}
	observe.Outcome(w, code)
	s.errorPage(w, http.StatusBadRequest, "Request refused", "This server cannot serve the application's request: "+desc+
		" ("+code+"). Nothing was sent back to the application: return to it and try again.")
}

// operatorClient reports whether a client was registered by the operator, not through open registration or a
// metadata document (neither of which vouches for its redirect URIs).
func operatorClient(c *store.Client) bool {
	return c.RegistrationTokenHash == "" && !clientmeta.IsURL(c.ID)
}

func isLoopbackURI(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "http" && isLoopback(u.Hostname())
}

// consentAlwaysAsked reports whether the consent page must be shown whatever the user approved before: for a device
// (the page names the code on the device's screen), and for a public client returning to a loopback address, which
// any program listening on the user's machine can claim to be, so a past approval says nothing about this one.
func consentAlwaysAsked(c *store.Client, ar *store.AuthRequest) bool {
	public := c.TokenEndpointAuth == "" || c.TokenEndpointAuth == "none"
	return forDevice(ar) || (public && isLoopbackURI(ar.RedirectURI))
}

func covers(granted, wanted string) bool {
	g := strings.Fields(granted)
	for _, w := range strings.Fields(wanted) {
		if !slices.Contains(g, w) {
			return false
		}
	}
	return true
}

// showConsent shows the consent page for ar; approved is the scope the user approved this client for before on
// this resource ("" if never), so that what a step-up adds is marked as new.
func (s *Server) showConsent(w http.ResponseWriter, ar *store.AuthRequest, c *store.Client, approved string) {
	host := ar.RedirectURI
	if u, err := url.Parse(ar.RedirectURI); err == nil && u.Host != "" {
		host = u.Host
	}
	var publishedHost hostname.Display
	name := c.Name
	if name == "" {
		name = "An unnamed application"
	}
	published := documentHost(c.ID)
	if published != "" {
		publishedHost = hostname.Of(published)
	}
	// Hosts are shown in their ASCII (punycode) form, which cannot pass for another name, and flagged when a label
	// mixes writing systems.
	s.render(w, http.StatusOK, consentPage, map[string]any{
		"Client": name, "ClientID": c.ID, "RedirectHost": hostname.Of(host), "Resource": ar.Resource, "Device": shownUserCode(ar),
		"Published": publishedHost, "LoopbackOnly": published != "" && loopbackOnly(c.RedirectURIs),
		"Scopes": s.scopeLines(ar.Scope, approved), "Ignored": strings.Fields(ar.IgnoredScope), "User": ar.User.Login, "Provider": s.providerName(*ar.User), "RequestID": ar.ID, "CSRF": ar.CSRFToken,
		"Remember": s.cfg.ConsentTTL > 0 && !consentAlwaysAsked(c, ar), "Action": s.cfg.Issuer + "/consent",
	})
}

// consent is the consent form's POST.
func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "Bad form", "The consent form could not be read.")
		return
	}
	ar, ok := s.boundRequest(w, r, r.PostForm.Get("request"))
	if !ok {
		return
	}
	if ar.User == nil || subtle.ConstantTimeCompare([]byte(ar.CSRFToken), []byte(r.PostForm.Get("csrf"))) != 1 {
		s.errorPage(w, http.StatusForbidden, "Form expired", "This consent form is not valid any more. Start again from your application.")
		return
	}
	end := s.endingOf(ar)
	if r.PostForm.Get("action") != "approve" {
		s.record(r.Context(), consentEvent(ar, audit.OutcomeDenied, "the user denied the request"))
		end.denied(w, r, ar)
		return
	}
	if err := s.recordApproval(r, ar, r.PostForm.Get("remember") != "" && end.mayRemember()); err != nil {
		s.storeFailedPage(w, r, err)
		return
	}
	s.record(r.Context(), consentEvent(ar, audit.OutcomeSuccess, "approved by the user"))
	end.approved(w, r, ar)
}

// recordApproval keeps what the user approved (with --consent-lifetime 0, nothing): remembered if they asked, else
// only so that a later, wider request (a step-up) marks what it adds. An approval not remembered never replaces a
// remembered one, which would ask the user again for what they chose to be spared.
func (s *Server) recordApproval(r *http.Request, ar *store.AuthRequest, remember bool) error {
	if s.cfg.ConsentTTL <= 0 {
		return nil
	}
	if !remember {
		past, err := s.store.GetConsent(r.Context(), ar.User.ID, ar.ClientID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && !past.NotRemembered {
			return nil
		}
	}
	now := time.Now()
	return s.store.PutConsent(r.Context(), &store.Consent{UserID: ar.User.ID, ClientID: ar.ClientID, Scope: ar.Scope,
		Resource: ar.Resource, GrantedAt: now, ExpiresAt: now.Add(s.cfg.ConsentTTL), NotRemembered: !remember})
}

// boundRequest loads the authorization request named by id, checking it belongs to this browser.
func (s *Server) boundRequest(w http.ResponseWriter, r *http.Request, id string) (*store.AuthRequest, bool) {
	cookie, err := r.Cookie(s.authCookie())
	if id == "" || err != nil || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(id)) != 1 {
		s.errorPage(w, http.StatusBadRequest, "Login not started here",
			"This login was not started in this browser, or it took too long. Start again from your application.")
		return nil, false
	}
	ar, err := s.store.GetAuthRequest(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		s.errorPage(w, http.StatusBadRequest, "Login expired", "This login took too long or was already used. Start again from your application.")
		return nil, false
	}
	if err != nil {
		s.storeFailedPage(w, r, err)
		return nil, false
	}
	return ar, true
}

// issueCode stores a single-use code and sends the browser back to the client with code, state and iss.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest) {
	code := randomToken(32)
	err := s.store.CreateCode(r.Context(), &store.AuthCode{
		Hash: store.HashSecret(code), ClientID: ar.ClientID, RedirectURI: ar.RedirectURI, CodeChallenge: ar.CodeChallenge,
		Scope: ar.Scope, Resource: ar.Resource, User: *ar.User, FamilyID: randomToken(16),
		ExpiresAt: time.Now().Add(s.cfg.CodeTTL),
	})
	if err != nil {
		s.storeFailedPage(w, r, err)
		return
	}
	_ = s.store.DeleteAuthRequest(r.Context(), ar.ID)
	http.SetCookie(w, &http.Cookie{Name: s.authCookie(), Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure})
	s.log.InfoContext(r.Context(), "authorization granted", "client_id", ar.ClientID, "user", ar.User.Login, "resource", ar.Resource)
	params := url.Values{"code": {code}, "iss": {s.cfg.Issuer}}
	if ar.State != "" {
		params.Set("state", ar.State)
	}
	http.Redirect(w, r, withParams(ar.RedirectURI, params), http.StatusFound)
}

// silentFailure ends a request that asked for no page (prompt=none) with the error a page would have avoided. The
// user has done nothing, so it goes to the client by failEarly's rule.
func (s *Server) silentFailure(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, code, desc string) {
	_ = s.store.DeleteAuthRequest(r.Context(), ar.ID)
	client, err := s.lookupClient(r.Context(), ar.ClientID)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "Unknown application", "The application's registration is gone. Add the server to your application again.")
		return
	}
	s.failEarly(w, r, client, ar.RedirectURI, ar.State, code, desc)
}

func (s *Server) finishWithError(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, code, desc string) {
	_ = s.store.DeleteAuthRequest(r.Context(), ar.ID)
	s.redirectError(w, r, ar.RedirectURI, ar.State, code, desc)
}

func (s *Server) errorParams(state, code, desc string) url.Values {
	v := url.Values{"error": {code}, "error_description": {desc}, "iss": {s.cfg.Issuer}}
	if state != "" {
		v.Set("state", state)
	}
	return v
}

func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state, code, desc string) {
	http.Redirect(w, r, withParams(redirectURI, s.errorParams(state, code, desc)), http.StatusFound)
}

// withParams adds query parameters to a redirect URI, keeping the query it already has.
func withParams(redirectURI string, params url.Values) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *Server) storeFailedPage(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "store failure", "err", err)
	s.cfg.Metrics.StoreError()
	w.Header().Set("Retry-After", "5")
	s.errorPage(w, http.StatusServiceUnavailable, "Temporarily unavailable", "The authorization server cannot reach its storage. Try again in a moment.")
}

func (s *Server) errorPage(w http.ResponseWriter, status int, title, message string) {
	s.render(w, status, errorPage, map[string]any{"Title": title, "Message": message})
}

// render writes an HTML page. html/template escapes every value; the headers forbid framing (clickjacking) and
// any script.
func (s *Server) render(w http.ResponseWriter, status int, t *template.Template, data any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := t.Execute(w, data); err != nil {
		s.log.Error("render page", "err", err)
	}
}

const pageStyle = `<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}.box{border:1px solid #ccc;border-radius:8px;padding:1rem 1.25rem}code{background:#f3f3f3;padding:0 .25rem}
button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem;border-radius:6px;border:1px solid #888;cursor:pointer}
button.primary{background:#1f6feb;color:#fff;border-color:#1f6feb}.host{font-size:1.2rem;font-weight:bold}</style>`

var errorPage = template.Must(template.New("error").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{{.Title}}</title>` + pageStyle + `</head><body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>`))

var deniedPage = template.Must(template.New("denied").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Access refused</title>` + pageStyle + `</head><body><h1>Access refused</h1><p>{{.Reason}}</p>
<p>Ask the gateway's operator to allow your {{.Provider}} account.</p><p><a href="{{.Back}}">Return to the application</a></p></body></html>`))

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Authorize {{.Client}}</title>` + pageStyle + `</head><body>
<h1>Authorize access to an MCP server</h1>
<div class="box">
<p><b>{{.Client}}</b> wants to use an MCP server as {{.Provider}} user <b>{{.User}}</b>.</p>
{{if .Published.ASCII}}<p>This application is described by <span class="host">{{.Published.ASCII}}</span>{{if .Published.Unicode}}
(an international name, written {{.Published.Unicode}}){{end}}; its name is what that site claims.</p>
{{if .Published.Mixed}}<p style="color:#b00">That address mixes alphabets ({{range $i, $s := .Published.Scripts}}{{if $i}}, {{end}}{{$s}}{{end}}), a
common way to imitate a familiar name: do not approve unless you are sure whose it is.</p>{{end}}
{{if .LoopbackOnly}}<p style="color:#b00">It only returns to programs on your own computer (localhost). Anyone can publish
such a description under any name: approve only if you just started this from a program you trust.</p>{{end}}{{end}}
{{if .Device}}<p>The device or terminal showing the code <span class="host">{{.Device}}</span> will get this access.
Only approve if that code is on a screen in front of you right now.</p>
{{else}}<p>After you approve, you will be sent to:<br><span class="host">{{.RedirectHost.ASCII}}</span>{{if .RedirectHost.Unicode}}
(an international name, written {{.RedirectHost.Unicode}}){{end}}</p>
{{if .RedirectHost.Mixed}}<p style="color:#b00">That address mixes alphabets ({{range $i, $s := .RedirectHost.Scripts}}{{if $i}}, {{end}}{{$s}}{{end}}), a
common way to imitate a familiar name: do not approve unless you are sure whose it is.</p>{{end}}{{end}}
<p>MCP server: <code>{{.Resource}}</code></p>
<p>It will be allowed to:</p>
<ul>{{range .Scopes}}<li><code>{{.Name}}</code>{{if .Text}}: {{.Text}}{{end}}{{if .New}} <b class="new">(new: not approved before)</b>{{end}}</li>{{end}}</ul>
{{if .Ignored}}<p style="color:#666;font-size:.9rem">It also asked for {{range .Ignored}}<code>{{.}}</code> {{end}}which this
server does not offer it; that is not granted.</p>{{end}}
<p style="color:#666;font-size:.9rem">Client id: <code>{{.ClientID}}</code>. Only approve if you started this connection yourself.</p>
</div>
<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.RequestID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{if .Remember}}<p><label><input type="checkbox" name="remember" value="1"> Remember this decision for this application</label></p>{{end}}
<p><button class="primary" type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button></p>
</form></body></html>`))
