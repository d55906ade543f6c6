package clientprofile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
)

// Env is where a profile runs.
type Env struct {
	MCPURL string       // the MCP server's URL, all the client is given
	HTTP   *http.Client // reaches the gateway (and its *.localhost hosts); redirects are not followed by the client
	// DocumentBase is the https origin where the test serves the profile's metadata document and keys, if it has any.
	DocumentBase string
	// Port is the loopback port a native client listens on for its redirect (0: a fixed one).
	Port int
}

// Metadata is the authorization server metadata as a client reads it.
type Metadata map[string]any

// Strings returns a list member of the metadata.
func (m Metadata) Strings(name string) []string {
	var out []string
	list, _ := m[name].([]any)
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func (m Metadata) str(name string) string { s, _ := m[name].(string); return s }

// Result is what a session did, for the test to check.
type Result struct {
	ClientID         string
	UsedDocument     bool     // identified by its metadata document (CIMD) instead of registering
	Registrations    int      // dynamic registrations made (a re-registration after invalid_client counts)
	AuthMethod       string   // token endpoint authentication used
	RedirectURI      string   // the redirect_uri sent
	RequestedScope   string   // the scope parameter sent at /authorize
	GrantedScope     string   // the scope of the token response
	ConsentPage      string   // the consent page's text, as the user saw it
	AuthorizationURL string   // the last authorization request
	Refreshes        int      // successful refreshes
	Preflights       []string // CORS preflights a browser client made (path of each)
	AccessToken      string
	RefreshToken     string
	Secrets          []string // every secret handled (codes, tokens, verifier, assertions), for log checks
}

// Session is one client connecting to one MCP server, as the profile says it does.
type Session struct {
	p   Profile
	env Env
	Res Result

	meta         Metadata
	prmScopes    []string
	resource     string
	challenge    string // the scope of the first challenge
	clientSecret string
	sessionID    string // Mcp-Session-Id of the MCP session in use
	protocol     string
	rpcID        int
}

// New prepares a session; nothing is sent yet.
func New(p Profile, env Env) *Session {
	if env.Port == 0 {
		env.Port = 33418
	}
	return &Session{p: p, env: env}
}

// Connect goes from the bare MCP URL to a tool call: challenge, discovery, registration (or the metadata
// document), authorization through the browser (GitHub login, consent), token, then initialize and tools/call.
func (s *Session) Connect(ctx context.Context) error {
	if err := s.discover(ctx); err != nil {
		return fmt.Errorf("%s: discovery: %w", s.p.Name, err)
	}
	if err := s.register(ctx); err != nil {
		return fmt.Errorf("%s: registration: %w", s.p.Name, err)
	}
	if err := s.authorize(ctx); err != nil {
		return fmt.Errorf("%s: %w", s.p.Name, err)
	}
	return nil
}

// discover follows the client's path from the 401 to the authorization server's metadata.
func (s *Session) discover(ctx context.Context) error {
	resp, err := s.mcpPost(ctx, "", initialize(s.p.ProtocolVersion, s.p.ClientName))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("an unauthenticated initialize got HTTP %d, not 401", resp.StatusCode)
	}
	params := challengeParams(resp.Header.Get("WWW-Authenticate"))
	prmURL := params["resource_metadata"]
	if prmURL == "" {
		return fmt.Errorf("the 401 names no resource_metadata: %q", resp.Header.Get("WWW-Authenticate"))
	}
	s.challenge = params["scope"]
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		ScopesSupported      []string `json:"scopes_supported"`
	}
	if err := s.getJSON(ctx, prmURL, &prm); err != nil {
		return fmt.Errorf("protected resource metadata: %w", err)
	}
	if prm.Resource == "" || !strings.HasPrefix(s.env.MCPURL, prm.Resource) || len(prm.AuthorizationServers) == 0 {
		return fmt.Errorf("protected resource metadata %+v does not fit %s", prm, s.env.MCPURL)
	}
	s.resource, s.prmScopes = prm.Resource, prm.ScopesSupported
	issuer := prm.AuthorizationServers[0]
	u, err := url.Parse(issuer)
	if err != nil {
		return err
	}
	// RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
	metaURL := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	if err := s.getJSON(ctx, metaURL, &s.meta); err != nil {
		return fmt.Errorf("authorization server metadata: %w", err)
	}
	if s.meta.str("issuer") != issuer {
		return fmt.Errorf("metadata issuer %q is not %q", s.meta.str("issuer"), issuer)
	}
	if !slices.Contains(s.meta.Strings("code_challenge_methods_supported"), "S256") {
		return errors.New("the authorization server does not advertise PKCE S256")
	}
	return nil
}

// register identifies the client: its metadata document when the profile uses one here, else dynamic registration.
func (s *Session) register(ctx context.Context) error {
	if s.p.Document != nil && s.p.UseDocument != nil && s.p.UseDocument(s.meta) {
		s.Res.ClientID, s.Res.UsedDocument = s.DocumentURL(), true
		s.Res.AuthMethod = "none"
		doc := s.p.Document(s.DocumentURL(), s.KeysURL())
		methods := s.meta.Strings("token_endpoint_auth_methods_supported")
		if m, _ := doc["token_endpoint_auth_method"].(string); m == "private_key_jwt" && slices.Contains(methods, m) {
			s.Res.AuthMethod = m
		}
		return nil
	}
	if s.p.Registration == nil {
		return errors.New("the profile cannot register and the server does not take its document")
	}
	endpoint := s.meta.str("registration_endpoint")
	if endpoint == "" {
		return errors.New("no registration_endpoint")
	}
	body, _ := json.Marshal(s.p.Registration(s.env.Port, s.env.MCPURL))
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		ClientID     string   `json:"client_id"`
		ClientSecret string   `json:"client_secret"`
		AuthMethod   string   `json:"token_endpoint_auth_method"`
		RedirectURIs []string `json:"redirect_uris"`
	}
	if err := decode(resp, http.StatusCreated, &out); err != nil {
		return err
	}
	if out.ClientID == "" || len(out.RedirectURIs) == 0 {
		return errors.New("the registration response lacks client_id or redirect_uris (clients parse them)")
	}
	s.Res.ClientID, s.clientSecret, s.Res.AuthMethod = out.ClientID, out.ClientSecret, out.AuthMethod
	s.Res.Registrations++
	s.Res.Secrets = append(s.Res.Secrets, out.ClientSecret)
	return nil
}

// DocumentURL is the profile's client_id when it uses its metadata document.
func (s *Session) DocumentURL() string { return s.env.DocumentBase + s.p.DocumentPath }

// KeysURL is where the profile's public keys are served, if it signs client assertions.
func (s *Session) KeysURL() string { return s.env.DocumentBase + s.p.KeysPath }

// authorize runs the authorization code flow with PKCE through the user's browser, redeems the code and makes the
// first MCP calls. A client that re-registers on invalid_client does so once and starts over.
func (s *Session) authorize(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := s.authorizeOnce(ctx)
		var ic *invalidClient
		if errors.As(err, &ic) && s.p.ReRegisterOnInvalidClient && attempt == 0 && !s.Res.UsedDocument {
			if err := s.register(ctx); err != nil {
				return fmt.Errorf("re-registration after invalid_client: %w", err)
			}
			continue
		}
		return err
	}
}

func (s *Session) authorizeOnce(ctx context.Context) error {
	verifier := rand.Text() + rand.Text() // 52 characters of base32: unreserved
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	redirect := s.p.RedirectURI(s.env.Port, s.env.MCPURL)
	scope := s.p.Scope(s.challenge, s.prmScopes, s.meta.Strings("scopes_supported"))
	q := url.Values{"response_type": {"code"}, "client_id": {s.Res.ClientID}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "redirect_uri": {redirect}, "state": {state}, "resource": {s.resource}}
	if scope != "" {
		q.Set("scope", scope)
	}
	if s.p.AuthorizeParams != nil {
		for k, v := range s.p.AuthorizeParams(scope) {
			q[k] = v
		}
	}
	s.Res.RedirectURI, s.Res.RequestedScope = redirect, scope
	s.Res.AuthorizationURL = s.meta.str("authorization_endpoint") + "?" + q.Encode()
	s.Res.Secrets = append(s.Res.Secrets, verifier)
	code, err := s.browse(ctx, s.Res.AuthorizationURL, redirect, state)
	if err != nil {
		return fmt.Errorf("authorization: %w", err)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"redirect_uri": {redirect}, "resource": {s.resource}}
	if err := s.token(ctx, form); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	return s.startMCP(ctx)
}

// Refresh renews the tokens as the client does when its access token expires, and opens a new MCP session with
// them; a client that re-registers on invalid_client (its registration is gone) registers and authorizes again
// instead.
func (s *Session) Refresh(ctx context.Context) error {
	reauthorized, err := s.refresh(ctx)
	if err != nil || reauthorized {
		return err
	}
	return s.startMCP(ctx)
}

// RefreshTokens renews the tokens as Refresh does, and keeps the MCP session: it belongs to the user, not to one
// token.
func (s *Session) RefreshTokens(ctx context.Context) error {
	_, err := s.refresh(ctx)
	return err
}

// refresh renews the tokens, or registers and authorizes again after invalid_client (reauthorized).
func (s *Session) refresh(ctx context.Context) (reauthorized bool, err error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.Res.RefreshToken}, "resource": {s.resource}}
	err = s.token(ctx, form)
	var ic *invalidClient
	if errors.As(err, &ic) && s.p.ReRegisterOnInvalidClient && !s.Res.UsedDocument {
		if err := s.register(ctx); err != nil {
			return false, fmt.Errorf("%s: re-registration after invalid_client: %w", s.p.Name, err)
		}
		return true, s.authorize(ctx)
	}
	if err != nil {
		return false, fmt.Errorf("%s: refresh: %w", s.p.Name, err)
	}
	s.Res.Refreshes++
	return false, nil
}

// invalidClient is a 401 invalid_client from the token endpoint: the registration is unknown or expired.
type invalidClient struct{ desc string }

func (e *invalidClient) Error() string { return "invalid_client: " + e.desc }

// token posts to the token endpoint with the client's authentication.
func (s *Session) token(ctx context.Context, form url.Values) error {
	endpoint := s.meta.str("token_endpoint")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	switch s.Res.AuthMethod {
	case "client_secret_basic":
		req.SetBasicAuth(url.QueryEscape(s.Res.ClientID), url.QueryEscape(s.clientSecret))
	case "client_secret_post":
		form.Set("client_id", s.Res.ClientID)
		form.Set("client_secret", s.clientSecret)
	case "private_key_jwt":
		a, err := s.assertion(endpoint)
		if err != nil {
			return err
		}
		form.Set("client_id", s.Res.ClientID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", a)
		s.Res.Secrets = append(s.Res.Secrets, a)
	default:
		form.Set("client_id", s.Res.ClientID)
	}
	req.Body = io.NopCloser(strings.NewReader(form.Encode()))
	req.ContentLength = int64(len(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(body, &out)
	if resp.StatusCode == http.StatusUnauthorized && out.Error == "invalid_client" {
		return &invalidClient{out.Description}
	}
	if resp.StatusCode != http.StatusOK || out.AccessToken == "" || !strings.EqualFold(out.TokenType, "Bearer") {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		return errors.New("the token response is cacheable")
	}
	if out.RefreshToken != "" {
		s.Res.RefreshToken = out.RefreshToken // clients keep the old one when none comes back
	}
	s.Res.AccessToken, s.Res.GrantedScope = out.AccessToken, out.Scope
	s.Res.Secrets = append(s.Res.Secrets, out.AccessToken, out.RefreshToken)
	return nil
}

// assertion signs an RFC 7523 client assertion for the token endpoint, as private_key_jwt clients do per request.
func (s *Session) assertion(audience string) (string, error) {
	if s.p.Signer == nil {
		return "", errors.New("the profile has no signing key")
	}
	now := time.Now()
	t := jwt.NewWithClaims(s.p.SigningMethod, jwt.MapClaims{"iss": s.Res.ClientID, "sub": s.Res.ClientID, "aud": audience,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": rand.Text()})
	t.Header["kid"] = s.p.KeyID
	return t.SignedString(s.p.Signer)
}

var tags = regexp.MustCompile(`<[^>]+>`)

// browse plays the user's browser from the authorization request to the redirect back to the client: the fake
// GitHub login, then the consent page, approved. The redirect itself is not followed (it goes to claude.ai, a
// custom scheme or a loopback port nobody listens on); its code is returned.
func (s *Session) browse(ctx context.Context, start, redirect, state string) (string, error) {
	b := browser.New(&http.Client{Transport: s.env.HTTP.Transport})
	b.Action, b.StopAt = "approve", []string{redirect}
	res, err := b.Run(ctx, start)
	if err != nil {
		return "", err
	}
	if res.Consent != "" {
		s.Res.ConsentPage = strings.Join(strings.Fields(tags.ReplaceAllString(res.Consent, " ")), " ")
	}
	if res.Location == nil {
		last := res.Visits[len(res.Visits)-1]
		return "", fmt.Errorf("stopped at %s: HTTP %d: %.300s", last.URL, res.Status, tags.ReplaceAllString(res.Page, " "))
	}
	q := res.Location.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("%s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != state {
		return "", errors.New("state did not come back")
	}
	if q.Get("iss") != s.meta.str("issuer") {
		return "", fmt.Errorf("iss %q is not the issuer (RFC 9207)", q.Get("iss"))
	}
	s.Res.Secrets = append(s.Res.Secrets, q.Get("code"))
	return q.Get("code"), nil
}

// ---- MCP over Streamable HTTP (the handshake revisions, which these clients speak)

func initialize(version, name string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":%q,"version":"1"}}}`,
		version, name)
}

// startMCP opens an MCP session with the current access token.
func (s *Session) startMCP(ctx context.Context) error {
	s.sessionID, s.protocol = "", ""
	resp, err := s.mcpPost(ctx, s.Res.AccessToken, initialize(s.p.ProtocolVersion, s.p.ClientName))
	if err != nil {
		return err
	}
	var init struct {
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	if err := readRPC(resp, &init); err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	s.sessionID, s.protocol = resp.Header.Get("Mcp-Session-Id"), init.Result.ProtocolVersion
	resp, err = s.mcpPost(ctx, s.Res.AccessToken, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("notifications/initialized: HTTP %d", resp.StatusCode)
	}
	return nil
}

// CallTool calls a tool in the session and returns its text.
func (s *Session) CallTool(ctx context.Context, name string, args map[string]any) (string, error) {
	s.rpcID++
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": s.rpcID, "method": "tools/call",
		"params": map[string]any{"name": name, "arguments": args}})
	resp, err := s.mcpPost(ctx, s.Res.AccessToken, string(b))
	if err != nil {
		return "", err
	}
	var out struct {
		Result struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := readRPC(resp, &out); err != nil {
		return "", fmt.Errorf("%s: tools/call: %w", s.p.Name, err)
	}
	if out.Error != nil {
		return "", fmt.Errorf("%s: tools/call: %s", s.p.Name, out.Error.Message)
	}
	var text strings.Builder
	for _, c := range out.Result.Content {
		text.WriteString(c.Text)
	}
	return text.String(), nil
}

func (s *Session) mcpPost(ctx context.Context, token, body string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.env.MCPURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if s.sessionID != "" {
		req.Header.Set("Mcp-Session-Id", s.sessionID)
	}
	if s.protocol != "" {
		req.Header.Set("MCP-Protocol-Version", s.protocol)
	}
	return s.do(req)
}

// readRPC reads one JSON-RPC response, sent as JSON or as an SSE stream.
func readRPC(resp *http.Response, v any) error {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("HTTP %d: %s (WWW-Authenticate: %s)", resp.StatusCode, b, resp.Header.Get("WWW-Authenticate"))
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "text/event-stream" {
		return json.NewDecoder(resp.Body).Decode(v)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		case line == "" && data.Len() > 0:
			var msg struct {
				ID     json.RawMessage `json:"id"`
				Result json.RawMessage `json:"result"`
				Error  json.RawMessage `json:"error"`
			}
			if json.Unmarshal([]byte(data.String()), &msg) == nil && len(msg.ID) > 0 && (msg.Result != nil || msg.Error != nil) {
				return json.Unmarshal([]byte(data.String()), v)
			}
			data.Reset() // a notification or request before the response
		}
	}
	return errors.New("the event stream ended without a response")
}

// ---- HTTP with the profile's habits

// do sends a request as the client would: its headers, and, for a browser client, from its origin after the CORS
// preflight a browser makes (which must allow it).
func (s *Session) do(req *http.Request) (*http.Response, error) {
	for k, v := range s.p.Headers {
		req.Header.Set(k, v)
	}
	if s.p.BrowserOrigin != "" {
		if err := s.preflight(req); err != nil {
			return nil, err
		}
		req.Header.Set("Origin", s.p.BrowserOrigin)
	}
	resp, err := s.env.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if s.p.BrowserOrigin != "" {
		if allow := resp.Header.Get("Access-Control-Allow-Origin"); allow != "*" && allow != s.p.BrowserOrigin {
			resp.Body.Close()
			return nil, fmt.Errorf("%s %s: the browser may not read the answer (Access-Control-Allow-Origin %q)", req.Method, req.URL.Path, allow)
		}
		for _, h := range []string{"WWW-Authenticate", "Mcp-Session-Id"} {
			if resp.Header.Get(h) != "" && !exposed(resp.Header, h) {
				resp.Body.Close()
				return nil, fmt.Errorf("%s %s: the browser cannot read %s (not in Access-Control-Expose-Headers)", req.Method, req.URL.Path, h)
			}
		}
	}
	return resp, nil
}

func exposed(h http.Header, name string) bool {
	for _, v := range strings.Split(h.Get("Access-Control-Expose-Headers"), ",") {
		if v = strings.TrimSpace(v); v == "*" || strings.EqualFold(v, name) {
			return true
		}
	}
	return false
}

// preflight is the OPTIONS request a browser sends before a cross-origin request with non-simple headers.
func (s *Session) preflight(req *http.Request) error {
	var names []string
	for k := range req.Header {
		switch lk := strings.ToLower(k); lk {
		case "accept", "accept-language", "content-language", "user-agent":
		case "content-type":
			if ct := req.Header.Get(k); ct != "application/x-www-form-urlencoded" && ct != "text/plain" && ct != "multipart/form-data" {
				names = append(names, lk)
			}
		default:
			names = append(names, lk)
		}
	}
	if len(names) == 0 && (req.Method == http.MethodGet || req.Method == http.MethodPost) {
		return nil // a simple request: no preflight
	}
	slices.Sort(names)
	pre, _ := http.NewRequestWithContext(req.Context(), http.MethodOptions, req.URL.String(), nil)
	pre.Header.Set("Origin", s.p.BrowserOrigin)
	pre.Header.Set("Access-Control-Request-Method", req.Method)
	if len(names) > 0 {
		pre.Header.Set("Access-Control-Request-Headers", strings.Join(names, ","))
	}
	resp, err := s.env.HTTP.Do(pre)
	if err != nil {
		return err
	}
	resp.Body.Close()
	s.Res.Preflights = append(s.Res.Preflights, req.URL.Path)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("preflight of %s %s: HTTP %d", req.Method, req.URL.Path, resp.StatusCode)
	}
	if allow := resp.Header.Get("Access-Control-Allow-Origin"); allow != "*" && allow != s.p.BrowserOrigin {
		return fmt.Errorf("preflight of %s %s: origin not allowed (%q)", req.Method, req.URL.Path, allow)
	}
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, n := range names {
		if !strings.Contains(allowed, n) && !strings.Contains(allowed, "*") {
			return fmt.Errorf("preflight of %s %s: header %s not allowed (%q)", req.Method, req.URL.Path, n, allowed)
		}
	}
	return nil
}

func (s *Session) getJSON(ctx context.Context, u string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if s.p.DiscoveryProtocolHeader {
		req.Header.Set("MCP-Protocol-Version", s.p.ProtocolVersion)
	}
	resp, err := s.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decode(resp, http.StatusOK, v)
}

func decode(resp *http.Response, want int, v any) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d: %s", resp.Request.Method, resp.Request.URL.Redacted(), resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// challengeParams reads the parameters of a Bearer challenge (RFC 6750 §3), as the SDKs do.
func challengeParams(h string) map[string]string {
	out := map[string]string{}
	rest, ok := strings.CutPrefix(strings.TrimSpace(h), "Bearer ")
	if !ok {
		return out
	}
	for _, m := range regexp.MustCompile(`(\w+)=(?:"([^"]*)"|([^\s,]+))`).FindAllStringSubmatch(rest, -1) {
		out[m[1]] = m[2] + m[3]
	}
	return out
}

// CallbackID is the suffix Codex adds to its loopback redirect: base64url of the first 9 bytes of the SHA-256 of
// the MCP server's URL (reported in openai/codex#30460).
func CallbackID(mcpURL string) string {
	sum := sha256.Sum256([]byte(mcpURL))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}
