package oauth

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/hostname"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// Registration bounds, so open registration cannot be used to fill storage.
const (
	maxRegistrationBody = 16 << 10
	maxRedirectURIs     = 10
	maxURILength        = 2000
	maxStringLength     = 200
	maxContacts         = 5
)

// clientMetadata is the RFC 7591 metadata this server understands; other fields are refused so nothing is stored
// that is never used.
type clientMetadata struct {
	ClientID                string   `json:"client_id,omitempty"` // RFC 7592 PUT repeats it
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	Contacts                []string `json:"contacts,omitempty"`
	TosURI                  string   `json:"tos_uri,omitempty"`
	PolicyURI               string   `json:"policy_uri,omitempty"`
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
	ApplicationType         string   `json:"application_type,omitempty"`
	// private_key_jwt (RFC 7523, RFC 7591 §2): the client's public keys, by URL or inline, and its algorithm.
	JWKSURI                     string          `json:"jwks_uri,omitempty"`
	JWKS                        json.RawMessage `json:"jwks,omitempty"`
	TokenEndpointAuthSigningAlg string          `json:"token_endpoint_auth_signing_alg,omitempty"`
	// Sent by clients, ignored by this server.
	ClientSecret     string `json:"client_secret,omitempty"`
	ClientIDIssuedAt int64  `json:"client_id_issued_at,omitempty"`
	SecretExpiresAt  int64  `json:"client_secret_expires_at,omitempty"`
	RegistrationURI  string `json:"registration_client_uri,omitempty"`
	RegistrationTok  string `json:"registration_access_token,omitempty"`
}

type metadataError struct{ code, desc string }

func (e *metadataError) Error() string { return e.desc }

func badMetadata(format string, a ...any) error {
	return &metadataError{"invalid_client_metadata", fmt.Sprintf(format, a...)}
}

func badRedirect(format string, a ...any) error {
	return &metadataError{"invalid_redirect_uri", fmt.Sprintf(format, a...)}
}

// readMetadata decodes and validates a registration body into a client (without id or secrets).
func (s *Server) readMetadata(w http.ResponseWriter, r *http.Request) (*clientMetadata, error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return nil, &metadataError{"invalid_request", "send the client metadata as JSON (Content-Type: application/json)"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBody))
	if err != nil {
		return nil, badMetadata("the registration request is larger than %d bytes", maxRegistrationBody)
	}
	var m clientMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, badMetadata("the body is not valid client metadata JSON: %v", err)
	}
	if err := s.validateMetadata(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

func (s *Server) validateMetadata(m *clientMetadata) error {
	// A headless client that only uses the device grant (RFC 8628) never receives a redirect.
	deviceOnly := slices.Contains(m.GrantTypes, DeviceGrantType) && !slices.Contains(m.GrantTypes, "authorization_code")
	if len(m.RedirectURIs) == 0 && !deviceOnly {
		return badRedirect("redirect_uris is required: list the URIs the authorization response may be sent to")
	}
	if len(m.RedirectURIs) > maxRedirectURIs {
		return badRedirect("at most %d redirect_uris", maxRedirectURIs)
	}
	for _, u := range m.RedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return err
		}
	}
	switch m.TokenEndpointAuthMethod {
	case "":
		m.TokenEndpointAuthMethod = "client_secret_basic" // RFC 7591 §2 default
	case "none", "client_secret_basic", "client_secret_post", clientmeta.AuthPrivateKeyJWT:
	default:
		return badMetadata("token_endpoint_auth_method %q is not supported (use none, client_secret_basic, client_secret_post or private_key_jwt)", m.TokenEndpointAuthMethod)
	}
	if err := s.validateKeys(m); err != nil {
		return err
	}
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{"authorization_code"}
	}
	for _, g := range m.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" && g != DeviceGrantType {
			return badMetadata("grant type %q is not supported (use authorization_code, refresh_token and %s)", g, DeviceGrantType)
		}
	}
	if !slices.Contains(m.GrantTypes, "authorization_code") && !deviceOnly {
		return badMetadata("grant_types must include authorization_code or " + DeviceGrantType)
	}
	if len(m.ResponseTypes) == 0 && !deviceOnly {
		m.ResponseTypes = []string{"code"}
	}
	if len(m.ResponseTypes) > 1 || (len(m.ResponseTypes) == 1 && m.ResponseTypes[0] != "code") {
		return badMetadata(`response_types must be ["code"]`)
	}
	// Scopes this server does not offer are dropped rather than refused (RFC 7591 §2 lets the server replace the
	// value; the response says what was registered), as at /authorize.
	m.Scope = s.registeredScope(m.Scope)
	for name, v := range map[string]string{"client_name": m.ClientName, "software_id": m.SoftwareID, "software_version": m.SoftwareVersion} {
		if len(v) > maxStringLength {
			return badMetadata("%s is longer than %d characters", name, maxStringLength)
		}
	}
	for name, v := range map[string]string{"client_uri": m.ClientURI, "logo_uri": m.LogoURI, "tos_uri": m.TosURI, "policy_uri": m.PolicyURI} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || len(v) > maxURILength || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return badMetadata("%s must be an http(s) URL", name)
		}
	}
	if len(m.Contacts) > maxContacts {
		return badMetadata("at most %d contacts", maxContacts)
	}
	for _, c := range m.Contacts {
		if len(c) > maxStringLength {
			return badMetadata("a contact is longer than %d characters", maxStringLength)
		}
	}
	if m.ApplicationType != "" && m.ApplicationType != "web" && m.ApplicationType != "native" {
		return badMetadata(`application_type must be "web" or "native"`)
	}
	return nil
}

// validateRedirectURI applies OAuth 2.1 §2.3.1 and RFC 8252: https, http on a loopback host, or a private-use
// scheme for native apps; never fragments, credentials, wildcards or script-like schemes.
// validateKeys checks the private_key_jwt metadata: keys are required for it (jwks_uri or jwks, not both, RFC 7591
// §2), an inline set must hold a usable key, and the algorithm must be one this server verifies.
func (s *Server) validateKeys(m *clientMetadata) error {
	if strings.TrimSpace(string(m.JWKS)) == "null" {
		m.JWKS = nil
	}
	hasKeys := m.JWKSURI != "" || len(m.JWKS) > 0
	if m.TokenEndpointAuthMethod != clientmeta.AuthPrivateKeyJWT {
		if hasKeys || m.TokenEndpointAuthSigningAlg != "" {
			return badMetadata("jwks_uri, jwks and token_endpoint_auth_signing_alg are only for token_endpoint_auth_method private_key_jwt")
		}
		return nil
	}
	switch {
	case !hasKeys:
		return badMetadata("private_key_jwt needs the client's public keys: send jwks_uri (or jwks)")
	case m.JWKSURI != "" && len(m.JWKS) > 0:
		return badMetadata("jwks_uri and jwks must not both be present (RFC 7591 §2)")
	case m.JWKSURI != "":
		if err := clientmeta.CheckJWKSURI(m.JWKSURI); err != nil {
			return badMetadata("%s", strings.TrimPrefix(err.Error(), "client metadata document: "))
		}
		if s.cfg.ClientKeys == nil {
			return badMetadata("this server does not fetch client keys: send them inline as jwks")
		}
	default:
		if _, err := jwk.ParseSet(m.JWKS); err != nil {
			return badMetadata("jwks: %v", err)
		}
	}
	if a := m.TokenEndpointAuthSigningAlg; a != "" && !slices.Contains(jwk.Algorithms, a) {
		return badMetadata("token_endpoint_auth_signing_alg %q is not accepted (use one of %s)", a, strings.Join(jwk.Algorithms, ", "))
	}
	return nil
}

// usesSecret reports whether a token endpoint auth method authenticates with a client secret.
func usesSecret(method string) bool {
	return method == "client_secret_basic" || method == "client_secret_post"
}

func validateRedirectURI(raw string) error {
	if len(raw) > maxURILength {
		return badRedirect("redirect URI longer than %d characters", maxURILength)
	}
	if strings.ContainsAny(raw, "*#\\ ") || strings.ContainsFunc(raw, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return badRedirect("redirect URI %q must not contain wildcards, fragments, spaces or control characters", raw)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return badRedirect("redirect URI %q is not an absolute URI", raw)
	}
	if u.User != nil {
		return badRedirect("redirect URI %q must not contain user information", raw)
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "https":
		if u.Host == "" {
			return badRedirect("redirect URI %q has no host", raw)
		}
	case "http":
		if !isLoopback(u.Hostname()) {
			return badRedirect("redirect URI %q: http is only allowed on a loopback host (127.0.0.1, [::1], localhost); use https", raw)
		}
	case "javascript", "data", "vbscript", "file", "blob", "about", "ftp", "ws", "wss", "mailto", "tel":
		return badRedirect("redirect URI scheme %q is not allowed", scheme)
	default:
		// A private-use scheme (RFC 8252 §7.1), such as com.example.app:/callback or cursor://callback.
		if u.Opaque != "" && !strings.HasPrefix(u.Opaque, "/") {
			return badRedirect("redirect URI %q must have a path (scheme:/path)", raw)
		}
	}
	return nil
}

// isLoopback reports whether a host is this computer, however it is spelt ("localhost.", "LOCALHOST", "[::1]").
func isLoopback(host string) bool {
	h, err := hostname.Canonical(host)
	return err == nil && (h == "localhost" || h == "127.0.0.1" || h == "::1")
}

// redirectAllowed matches a requested redirect URI against the registered ones: exact string comparison, except
// that a loopback http URI matches on any port (RFC 8252 §7.3), since native apps bind an ephemeral port.
func redirectAllowed(registered []string, requested string) bool {
	if slices.Contains(registered, requested) {
		return true
	}
	req, err := url.Parse(requested)
	if err != nil || req.Scheme != "http" || !isLoopback(req.Hostname()) || req.User != nil || req.Fragment != "" {
		return false
	}
	for _, r := range registered {
		reg, err := url.Parse(r)
		if err != nil || reg.Scheme != "http" || !isLoopback(reg.Hostname()) {
			continue
		}
		if reg.Hostname() == req.Hostname() && reg.EscapedPath() == req.EscapedPath() && reg.RawQuery == req.RawQuery {
			return true
		}
	}
	return false
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	if !s.allowRegistration(s.clientIP(r)) {
		w.Header().Set("Retry-After", "60")
		s.cfg.Metrics.Registration("rate_limited")
		oauthError(w, http.StatusTooManyRequests, "temporarily_unavailable", "too many registrations from this address; try again in a minute")
		return
	}
	m, err := s.readMetadata(w, r)
	if err != nil {
		s.cfg.Metrics.Registration("refused")
		s.metadataFailed(w, err)
		return
	}
	now := time.Now()
	c := &store.Client{ID: randomToken(16), IssuedAt: now, ExpiresAt: s.cfg.Clients.AtRegistration(now)}
	secret := ""
	if usesSecret(m.TokenEndpointAuthMethod) {
		secret = randomToken(32)
		c.SecretHash = store.HashSecret(secret)
	}
	regToken := randomToken(32)
	c.RegistrationTokenHash = store.HashSecret(regToken)
	applyMetadata(c, m)
	if err := s.store.CreateClient(r.Context(), c); err != nil {
		s.storeFailed(w, r, "create client", err)
		return
	}
	s.cfg.Metrics.Registration("registered")
	s.record(r.Context(), audit.Event{Name: eventClientRegister, Outcome: audit.OutcomeSuccess, ClientID: c.ID,
		ClientName: c.Name, Scope: c.Scope})
	s.log.InfoContext(r.Context(), "client registered", "client_id", c.ID, "client_name", c.Name, "auth", c.TokenEndpointAuth)
	resp := s.clientResponse(c)
	if secret != "" {
		resp["client_secret"] = secret
	}
	resp["registration_access_token"] = regToken
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, resp)
}

func applyMetadata(c *store.Client, m *clientMetadata) {
	c.RedirectURIs = m.RedirectURIs
	c.TokenEndpointAuth = m.TokenEndpointAuthMethod
	c.GrantTypes = m.GrantTypes
	c.Name = m.ClientName
	c.Scope = m.Scope
	c.JWKSURI, c.JWKS, c.AuthSigningAlg = m.JWKSURI, m.JWKS, m.TokenEndpointAuthSigningAlg
	c.Metadata = map[string]any{}
	for k, v := range map[string]any{"response_types": m.ResponseTypes, "client_uri": m.ClientURI, "logo_uri": m.LogoURI,
		"contacts": m.Contacts, "tos_uri": m.TosURI, "policy_uri": m.PolicyURI, "software_id": m.SoftwareID,
		"software_version": m.SoftwareVersion, "application_type": m.ApplicationType} {
		switch v := v.(type) {
		case string:
			if v != "" {
				c.Metadata[k] = v
			}
		case []string:
			if len(v) > 0 {
				c.Metadata[k] = v
			}
		}
	}
}

// clientResponse is the registered metadata as RFC 7591 §3.2.1 returns it (secrets added by the caller).
func (s *Server) clientResponse(c *store.Client) map[string]any {
	resp := map[string]any{}
	for k, v := range c.Metadata {
		resp[k] = v
	}
	resp["client_id"] = c.ID
	resp["client_id_issued_at"] = c.IssuedAt.Unix()
	resp["redirect_uris"] = c.RedirectURIs
	resp["token_endpoint_auth_method"] = c.TokenEndpointAuth
	resp["grant_types"] = c.GrantTypes
	if c.Name != "" {
		resp["client_name"] = c.Name
	}
	if c.Scope != "" {
		resp["scope"] = c.Scope
	}
	if c.JWKSURI != "" {
		resp["jwks_uri"] = c.JWKSURI
	}
	if len(c.JWKS) > 0 {
		resp["jwks"] = c.JWKS
	}
	if c.AuthSigningAlg != "" {
		resp["token_endpoint_auth_signing_alg"] = c.AuthSigningAlg
	}
	if c.SecretHash != "" {
		// 0: the secret has no date of its own. The registration ends when it goes unused (clientlife); the token
		// endpoint then answers invalid_client, and the client registers again.
		resp["client_secret_expires_at"] = 0
	}
	resp["registration_client_uri"] = s.cfg.Issuer + "/register/" + url.PathEscape(c.ID)
	return resp
}

func (s *Server) metadataFailed(w http.ResponseWriter, err error) {
	var me *metadataError
	if errors.As(err, &me) {
		oauthError(w, http.StatusBadRequest, me.code, me.desc)
		return
	}
	oauthError(w, http.StatusBadRequest, "invalid_client_metadata", err.Error())
}

// managedClient authenticates an RFC 7592 request by its registration access token. Unknown clients and wrong
// tokens get the same answer, so the endpoint does not reveal which client ids exist.
func (s *Server) managedClient(w http.ResponseWriter, r *http.Request) *store.Client {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the registration access token is required"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", "send the registration access token as a Bearer token")
		return nil
	}
	c, err := s.store.GetClient(r.Context(), r.PathValue("id"))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.storeFailed(w, r, "read client", err)
		return nil
	}
	if c == nil || subtle.ConstantTimeCompare([]byte(c.RegistrationTokenHash), []byte(store.HashSecret(tok))) != 1 ||
		(!c.ExpiresAt.IsZero() && time.Now().After(c.ExpiresAt)) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", "the registration access token is not valid for this client")
		return nil
	}
	return c
}

func (s *Server) readClient(w http.ResponseWriter, r *http.Request) {
	if c := s.managedClient(w, r); c != nil {
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, s.clientResponse(c))
	}
}

func (s *Server) updateClient(w http.ResponseWriter, r *http.Request) {
	c := s.managedClient(w, r)
	if c == nil {
		return
	}
	m, err := s.readMetadata(w, r)
	if err != nil {
		s.metadataFailed(w, err)
		return
	}
	if m.ClientID != c.ID {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body's client_id must be this client's id (RFC 7592 §2.2)")
		return
	}
	if usesSecret(m.TokenEndpointAuthMethod) != (c.SecretHash != "") {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "a client cannot switch between authenticating with a secret and without one; register a new one")
		return
	}
	applyMetadata(c, m)
	if err := s.store.UpdateClient(r.Context(), c); err != nil {
		s.storeFailed(w, r, "update client", err)
		return
	}
	s.record(r.Context(), audit.Event{Name: eventClientUpdate, Outcome: audit.OutcomeSuccess, ClientID: c.ID,
		ClientName: c.Name, Scope: c.Scope})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.clientResponse(c))
}

func (s *Server) deleteClient(w http.ResponseWriter, r *http.Request) {
	c := s.managedClient(w, r)
	if c == nil {
		return
	}
	// Revoke first: a client that is gone must leave no working token behind.
	if _, err := s.store.RevokeClient(r.Context(), c.ID); err != nil {
		s.storeFailed(w, r, "revoke client tokens", err)
		return
	}
	if err := s.store.DeleteClient(r.Context(), c.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.storeFailed(w, r, "delete client", err)
		return
	}
	s.cfg.Metrics.Revoked("client_deleted")
	s.log.InfoContext(r.Context(), "client deleted", "client_id", c.ID)
	s.record(r.Context(), audit.Event{Name: eventClientDelete, Outcome: audit.OutcomeSuccess, ClientID: c.ID,
		Reason: "RFC 7592 DELETE by the client"})
	w.WriteHeader(http.StatusNoContent)
}
