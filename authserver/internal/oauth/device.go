package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// The device authorization grant (RFC 8628) lets a client without a browser (a script, a CLI on a server) get
// tokens: it asks for a device code, the user opens the verification page anywhere, enters the user code, logs in
// through an identity provider (GitHub, OpenID Connect) and approves on the same consent page, and the client polls
// /token meanwhile.

// DeviceGrantType is the grant type of RFC 8628 §3.4.
const DeviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// userCodeAlphabet has no vowels (no words spelled by accident) and no look-alike characters (RFC 8628 §6.1).
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// 8 characters of 20: 2.56e10 codes; with the attempt limit below, guessing a live one is hopeless (RFC 8628 §5.1).
const userCodeLength = 8

func newUserCode() string {
	b := make([]byte, userCodeLength)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = userCodeAlphabet[int(b[i])%len(userCodeAlphabet)] // 256 % 20 leaves a negligible bias
	}
	return string(b)
}

// normalizeUserCode accepts what a person types: any case, dashes and spaces.
func normalizeUserCode(s string) string {
	s = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s))
	if len(s) != userCodeLength || strings.Trim(s, userCodeAlphabet) != "" {
		return ""
	}
	return s
}

// displayUserCode is how the code is shown: XXXX-XXXX.
func displayUserCode(code string) string { return code[:4] + "-" + code[4:] }

// deviceAuthorization is POST /device_authorization (RFC 8628 §3.1-3.2): the caller is rate-limited, the client
// authenticated (clientForm), the device grant started (startDevice, which returns the answer or an error value)
// and this one place answers.
func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var (
		body map[string]any
		err  error
	)
	if !s.allowFrom(s.deviceAuthLimit, r) {
		err = &oauthErr{status: http.StatusTooManyRequests, code: "slow_down", retryAfter: "60",
			desc: "too many device authorization requests from this address; wait a minute"}
	} else if c, cerr := s.clientForm(w, r); cerr != nil {
		err = cerr
	} else {
		body, err = s.startDevice(r.Context(), r.PostForm, c)
	}
	if err != nil {
		s.answerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// startDevice stores a pending device grant for client c and returns the device authorization response.
func (s *Server) startDevice(ctx context.Context, f url.Values, c *store.Client) (map[string]any, error) {
	if !slices.Contains(c.GrantTypes, DeviceGrantType) {
		return nil, badRequest("unauthorized_client", "this client did not register the grant type "+DeviceGrantType)
	}
	// What a device request makes the server store is bounded like an authorization request's: anyone may send one,
	// and it stays in the store until it is decided or expires.
	if len(f.Get("scope")) > maxScopeLen {
		return nil, badRequest("invalid_scope", "scope is longer than "+strconv.Itoa(maxScopeLen)+" bytes")
	}
	if slices.ContainsFunc(f["resource"], func(v string) bool { return len(v) > maxResourceLen }) {
		return nil, badRequest("invalid_target", "resource is longer than "+strconv.Itoa(maxResourceLen)+" bytes")
	}
	if full, err := s.pendingFull(ctx, c.ID); err != nil {
		return nil, storeFailure("count pending device grants", err)
	} else if full {
		return nil, &oauthErr{status: http.StatusTooManyRequests, code: "temporarily_unavailable", retryAfter: "60",
			desc: "too many device authorizations of this client are in progress; try again in a few minutes"}
	}
	scope, _ := s.grantScope(f.Get("scope"), c)
	resource, problem := s.resolveResource(f["resource"])
	if problem != "" {
		return nil, badRequest("invalid_target", problem)
	}
	secret := randomToken(32)
	g := &store.DeviceGrant{SecretHash: store.HashSecret(secret), ClientID: c.ID, Scope: scope, Resource: resource,
		Interval: s.cfg.DevicePollInterval, Status: store.DevicePending, ExpiresAt: time.Now().Add(s.cfg.DeviceCodeTTL)}
	var err error
	for range 5 { // a collision with a live code is rare; try another
		g.UserCode = newUserCode()
		if err = s.store.CreateDeviceGrant(ctx, g); !errors.Is(err, store.ErrAlreadyExists) {
			break
		}
	}
	if err != nil {
		return nil, storeFailure("create device grant", err)
	}
	verify := s.cfg.Issuer + "/device"
	return map[string]any{
		// The device code names its grant by user code; only the secret part's hash is stored.
		"device_code":               g.UserCode + "." + secret,
		"user_code":                 displayUserCode(g.UserCode),
		"verification_uri":          verify,
		"verification_uri_complete": verify + "?user_code=" + displayUserCode(g.UserCode),
		"expires_in":                int(s.cfg.DeviceCodeTTL.Seconds()),
		"interval":                  int(s.cfg.DevicePollInterval.Seconds()),
	}, nil
}

// deviceToken is the device grant at /token (RFC 8628 §3.4-3.5).
func (s *Server) deviceToken(ctx context.Context, f url.Values, c *store.Client) (*issued, error) {
	if !slices.Contains(c.GrantTypes, DeviceGrantType) {
		return nil, badRequest("unauthorized_client", "this client did not register the grant type "+DeviceGrantType)
	}
	userCode, secret, _ := strings.Cut(f.Get("device_code"), ".")
	if userCode == "" || secret == "" {
		return nil, badRequest("invalid_request", "device_code is required: the one /device_authorization returned")
	}
	// Check the secret before polling, so a guessed user code cannot disturb someone else's grant.
	g, err := s.store.GetDeviceGrant(ctx, userCode)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badRequest("expired_token", "the device code expired or was already used: start again")
	}
	if err != nil {
		return nil, storeFailure("read device grant", err)
	}
	if subtle.ConstantTimeCompare([]byte(g.SecretHash), []byte(store.HashSecret(secret))) != 1 {
		return nil, badRequest("invalid_grant", "the device code is not valid")
	}
	if g.ClientID != c.ID {
		return nil, badRequest("invalid_grant", "the device code was issued to another client")
	}
	g, tooEarly, err := s.store.PollDeviceGrant(ctx, userCode, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, badRequest("expired_token", "the device code expired or was already used: start again")
	}
	if err != nil {
		return nil, storeFailure("poll device grant", err)
	}
	switch g.Status {
	case store.DeviceApproved:
		return s.issueTokens(ctx, c, grantOf{name: "device_code", family: g.FamilyID, user: *g.User, scope: g.Scope,
			resource: g.Resource})
	case store.DeviceDenied:
		return nil, badRequest("access_denied", "the user denied the request")
	default:
		if tooEarly {
			return nil, badRequest("slow_down", "polling too often: wait the interval, now 5 seconds longer")
		}
		return nil, badRequest("authorization_pending", "the user has not finished yet: keep polling")
	}
}

// devicePage is GET /device: the form where the user enters the code shown by the device (prefilled from
// verification_uri_complete, but always confirmed by a click, so a link alone cannot approve anything).
func (s *Server) devicePage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, devicePage, map[string]any{"Code": r.URL.Query().Get("user_code"), "Action": s.cfg.Issuer + "/device",
		"SignIn": s.signInWith()})
}

// deviceSubmit is the form's POST: a known pending code starts the login, like /authorize does.
func (s *Server) deviceSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "Bad form", "The form could not be read.")
		return
	}
	typed := r.PostForm.Get("user_code")
	retry := func(status int, msg string) {
		s.render(w, status, devicePage, map[string]any{"Code": typed, "Error": msg, "Action": s.cfg.Issuer + "/device", "SignIn": s.signInWith()})
	}
	// Every attempt counts against the address, so user codes cannot be enumerated (RFC 8628 §5.1).
	if !s.allowFrom(s.deviceLimit, r) {
		w.Header().Set("Retry-After", "60")
		retry(http.StatusTooManyRequests, "Too many attempts from your network. Wait a minute and try again.")
		return
	}
	code := normalizeUserCode(typed)
	if code == "" {
		retry(http.StatusBadRequest, "A code has 8 letters, like BCDF-GHJK. Check what your device shows.")
		return
	}
	g, err := s.store.GetDeviceGrant(r.Context(), code)
	if errors.Is(err, store.ErrNotFound) || (err == nil && g.Status != store.DevicePending) {
		retry(http.StatusBadRequest, "This code is unknown, expired or already used. Start again on your device to get a new one.")
		return
	}
	if err != nil {
		s.storeFailedPage(w, r, err)
		return
	}
	if _, err := s.lookupClient(r.Context(), g.ClientID); err != nil {
		retry(http.StatusBadRequest, "The application that asked for this code is no longer registered.")
		return
	}
	now := time.Now()
	ar := &store.AuthRequest{ID: randomToken(24), ClientID: g.ClientID, Scope: g.Scope, Resource: g.Resource,
		DeviceUserCode: code, CSRFToken: randomToken(24), CreatedAt: now, ExpiresAt: now.Add(s.cfg.AuthRequestTTL)}
	s.startLogin(w, r, ar)
}

// shownUserCode is the device's code as the pages show it ("" for a client's request).
func shownUserCode(ar *store.AuthRequest) string {
	if !forDevice(ar) {
		return ""
	}
	return displayUserCode(ar.DeviceUserCode)
}

// finishDevice records the user's decision on the device grant behind ar and tells them what happens next.
func (s *Server) finishDevice(w http.ResponseWriter, r *http.Request, ar *store.AuthRequest, approved bool) {
	var user store.User
	if ar.User != nil {
		user = *ar.User
	}
	err := s.store.DecideDeviceGrant(r.Context(), ar.DeviceUserCode, approved, user, randomToken(16))
	_ = s.store.DeleteAuthRequest(r.Context(), ar.ID)
	http.SetCookie(w, &http.Cookie{Name: s.authCookie(), Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure})
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrReused):
		s.errorPage(w, http.StatusBadRequest, "Code no longer valid",
			"This code expired or was already used. Start again on your device to get a new one.")
	case err != nil:
		s.storeFailedPage(w, r, err)
	case approved:
		s.log.InfoContext(r.Context(), "device authorization granted", "client_id", ar.ClientID, "user", user.Login, "resource", ar.Resource)
		s.render(w, http.StatusOK, errorPage, map[string]any{"Title": "Device approved",
			"Message": "You can close this page and return to your device: it receives its access within a few seconds."})
	default:
		s.render(w, http.StatusOK, errorPage, map[string]any{"Title": "Request denied",
			"Message": "The device gets no access. You can close this page."})
	}
}

var devicePage = template.Must(template.New("device").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Connect a device</title>` + pageStyle + `</head><body>
<h1>Connect a device</h1>
<form method="post" action="{{.Action}}" class="box">
<p>Enter the code that your device or terminal shows.</p>
{{if .Error}}<p style="color:#b00">{{.Error}}</p>{{end}}
<p><input name="user_code" value="{{.Code}}" autocomplete="off" autocapitalize="characters" spellcheck="false"
 style="font-size:1.4rem;letter-spacing:.15rem;width:12rem;text-transform:uppercase" placeholder="BCDF-GHJK" required></p>
<p><button class="primary" type="submit">Continue</button></p>
<p style="color:#666;font-size:.9rem">Next you log in with {{.SignIn}} and see what the device asks for. Only continue if you
started this on a device you are using right now.</p>
</form></body></html>`))
