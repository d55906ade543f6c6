package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientassertion"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Client authentication at the token, revocation, introspection and device endpoints (OAuth 2.1 §2.4): a client
// authenticates the way it registered (or its metadata document declares), with exactly one method per request:
//
//   - none: client_id only (public clients, PKCE protects the code);
//   - client_secret_basic / client_secret_post: the registered secret;
//   - private_key_jwt (RFC 7523 §2.2): client_assertion_type urn:ietf:params:oauth:client-assertion-type:jwt-bearer
//     and a client_assertion signed with a key the client published (jwks_uri or jwks); client_id may be omitted,
//     the assertion's iss names the client.
//
// A metadata-document client may also use the other methods its document lists that this server accepts (a
// document preferring private_key_jwt that also lists none may use either).

// authMethod is how a request authenticates, and with what.
type authMethod struct {
	name      string // none, client_secret_basic, client_secret_post, private_key_jwt
	clientID  string
	secret    string
	assertion string
}

// presentedAuth reads the credentials of a request. It refuses a request that uses more than one method (RFC 6749
// §2.3: invalid_request) or names two different clients (invalid_client); problem says why.
func presentedAuth(r *http.Request) (m authMethod, code, problem string) {
	f := r.PostForm
	user, pass, basic := r.BasicAuth()
	assertType, assertion := f.Get("client_assertion_type"), f.Get("client_assertion")
	secret := f.Get("client_secret")
	used := 0
	for _, b := range []bool{basic, assertType != "" || assertion != "", secret != ""} {
		if b {
			used++
		}
	}
	if used > 1 {
		return m, "invalid_request", "use one client authentication method per request (RFC 6749 §2.3): Basic credentials, client_secret or client_assertion"
	}
	m = authMethod{name: "none", clientID: f.Get("client_id")}
	switch {
	case basic:
		// RFC 6749 §2.3.1: the Basic credentials are form-urlencoded.
		id, _ := url.QueryUnescape(user)
		pw, _ := url.QueryUnescape(pass)
		if m.clientID != "" && m.clientID != id {
			return m, "invalid_client", "client_id in the form differs from the Basic credentials (whose user is the form-urlencoded client_id, RFC 6749 §2.3.1)"
		}
		m = authMethod{name: "client_secret_basic", clientID: id, secret: pw}
	case assertType != "" || assertion != "":
		if assertType != clientassertion.Type {
			return m, "invalid_request", "client_assertion_type must be " + clientassertion.Type
		}
		if assertion == "" {
			return m, "invalid_request", "client_assertion is required with client_assertion_type"
		}
		iss, err := clientassertion.Issuer(assertion)
		if err != nil {
			return m, "invalid_client", err.Error()
		}
		if m.clientID != "" && m.clientID != iss {
			return m, "invalid_client", "client_id differs from the client assertion's iss"
		}
		m = authMethod{name: clientmeta.AuthPrivateKeyJWT, clientID: iss, assertion: assertion}
	case secret != "":
		m.name, m.secret = "client_secret_post", secret
	}
	return m, "", ""
}

// authenticateClient checks the client's credentials: it returns the client, or the error to answer (an *oauthErr,
// or a store failure).
func (s *Server) authenticateClient(r *http.Request) (*store.Client, error) {
	m, code, problem := presentedAuth(r)
	_, _, basic := r.BasicAuth()
	switch code {
	case "invalid_request":
		return nil, badRequest(code, problem)
	case "invalid_client":
		return nil, clientFailure(basic, problem)
	}
	if m.clientID == "" {
		return nil, clientFailure(basic, "client authentication is required: send client_id (and the secret or client assertion, for confidential clients)")
	}
	if s.cfg.ClientMetadata != nil {
		if err := s.fetchAllowed(r, s.cfg.ClientMetadata.WouldFetch(m.clientID)); err != nil {
			return nil, err
		}
	}
	c, err := s.lookupClient(r.Context(), m.clientID)
	if me, ok := asDocumentError(err); ok {
		return nil, clientFailure(basic, me.Error())
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, clientFailure(basic, "unknown client: register again")
	}
	if err != nil {
		return nil, storeFailure("read client", err)
	}
	if !c.ExpiresAt.IsZero() && time.Now().After(c.ExpiresAt) {
		return nil, clientFailure(basic, "the client's registration has expired: register again")
	}
	accepted := append([]string{c.TokenEndpointAuth}, c.AlsoAuthMethods...)
	if !slices.Contains(accepted, m.name) {
		return nil, clientFailure(basic, fmt.Sprintf("this client authenticates with %s, not %s", strings.Join(accepted, " or "), m.name))
	}
	switch m.name {
	case "client_secret_basic", "client_secret_post":
		if c.SecretHash == "" || subtle.ConstantTimeCompare([]byte(c.SecretHash), []byte(store.HashSecret(m.secret))) != 1 {
			return nil, clientFailure(basic, "wrong client secret")
		}
	case clientmeta.AuthPrivateKeyJWT:
		err := s.assertions.Verify(r.Context(), clientassertion.Request{
			ClientID: c.ID, Alg: c.AuthSigningAlg, Keys: s.clientKeys(r, c), Assertion: m.assertion,
			Audiences: s.assertionAudiences(),
		})
		var ae *clientassertion.Error
		var limited *oauthErr
		me, isDoc := asDocumentError(err)
		switch {
		case errors.As(err, &limited):
			return nil, limited
		case errors.As(err, &ae):
			s.log.InfoContext(r.Context(), "client assertion refused", "client_id", c.ID, "reason", ae.Reason)
			return nil, clientFailure(false, ae.Error())
		case isDoc:
			s.log.InfoContext(r.Context(), "client keys unusable", "client_id", c.ID, "reason", me.Reason)
			return nil, clientFailure(false, "the client's keys cannot be used: "+me.Reason)
		case err != nil:
			return nil, storeFailure("check client assertion", err)
		}
	}
	return c, nil
}

// assertionAudiences is what a client assertion's aud may be, as one string: the issuer identifier, which
// draft-ietf-oauth-rfc7523bis makes the only value, and the token endpoint URL, because ChatGPT (docs/clients.md)
// signs its assertions for the token endpoint. Both name this server alone and are the same at every endpoint; the
// URL of the endpoint a request went to is not accepted.
func (s *Server) assertionAudiences() []string {
	return []string{s.cfg.Issuer, s.cfg.Issuer + "/token"}
}

// fetchAllowed applies the per-address limit on what a caller that has not authenticated yet may make this server
// fetch (ClientFetchPerMinute): a look-up that has to fetch a client's metadata document or key set takes one from
// the caller's address; one answered from the cache, success or failure, is free.
func (s *Server) fetchAllowed(r *http.Request, wouldFetch bool) error {
	if !wouldFetch || s.allowFrom(s.fetchLimit, r) {
		return nil
	}
	secs := int(math.Ceil(60 / s.cfg.ClientFetchPerMinute))
	return &oauthErr{status: http.StatusTooManyRequests, code: "temporarily_unavailable", retryAfter: strconv.Itoa(secs),
		desc: fmt.Sprintf("too many client metadata documents and key sets fetched for requests from this address: try again in %d s", secs)}
}

// clientKeys is where a private_key_jwt client's public keys come from: its inline set, or its jwks_uri through the
// guarded fetcher, within the caller's fetch limit.
func (s *Server) clientKeys(r *http.Request, c *store.Client) clientassertion.Keys {
	return func(ctx context.Context, fresh bool) ([]jwk.Key, error) {
		switch {
		case len(c.JWKS) > 0:
			keys, err := jwk.ParseSet(c.JWKS)
			if err != nil {
				return nil, &clientmeta.Error{Reason: "jwks: " + err.Error()}
			}
			return keys, nil
		case c.JWKSURI != "" && s.cfg.ClientKeys != nil:
			if err := s.fetchAllowed(r, s.cfg.ClientKeys.WouldFetchKeys(c.JWKSURI, fresh)); err != nil {
				return nil, err
			}
			return s.cfg.ClientKeys.JWKS(ctx, c.JWKSURI, fresh)
		}
		return nil, &clientmeta.Error{Reason: "the client has no keys this server can read (jwks_uri or jwks)"}
	}
}

// clientFailure is a failed client authentication: 401 invalid_client (RFC 6749 §5.2), which tells clients such as
// Claude.ai and the MCP SDKs to register again. A client that used Basic is challenged for Basic.
func clientFailure(basic bool, desc string) error {
	e := &oauthErr{status: http.StatusUnauthorized, code: "invalid_client", desc: desc}
	if basic {
		e.challenge = `Basic realm="token"`
	}
	return e
}

// clientForm reads a form-encoded request from an authenticated client (token, revoke, introspect, device
// authorization): it returns the client, or the error to answer.
func (s *Server) clientForm(w http.ResponseWriter, r *http.Request) (*store.Client, error) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return nil, badRequest("invalid_request", "send the request as application/x-www-form-urlencoded")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 && k != "resource" {
			return nil, badRequest("invalid_request", "parameter "+k+" is repeated")
		}
	}
	return s.authenticateClient(r)
}
