package oauth

import (
	"context"
	"errors"
	"net/url"
	"slices"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// lookupClient finds a client by id: a registered client from the store or, when the id is an https URL and Client
// ID Metadata Documents are on, the public client its document describes. Such clients are never stored: the
// document (cached as its HTTP headers allow) is the registration. A document that cannot be used gives a
// *clientmeta.Error saying why.
func (s *Server) lookupClient(ctx context.Context, id string) (*store.Client, error) {
	if s.cfg.ClientMetadata == nil || !clientmeta.IsURL(id) {
		return s.store.GetClient(ctx, id)
	}
	doc, err := s.cfg.ClientMetadata.Fetch(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, u := range doc.RedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return nil, &clientmeta.Error{Reason: "redirect_uris: " + err.Error()}
		}
	}
	grants := doc.GrantTypes
	if len(grants) == 0 {
		grants = []string{"authorization_code"} // RFC 7591 §2 default
	}
	for _, g := range grants {
		if g != "authorization_code" && g != "refresh_token" && g != DeviceGrantType {
			return nil, &clientmeta.Error{Reason: "grant type " + g + " is not supported (use authorization_code and refresh_token)"}
		}
	}
	return &store.Client{ID: id, Name: doc.ClientName, RedirectURIs: doc.RedirectURIs, TokenEndpointAuth: doc.TokenEndpointAuthMethod,
		AlsoAuthMethods: doc.TokenEndpointAuthMethodsSupported, JWKSURI: doc.JWKSURI, JWKS: doc.JWKS,
		AuthSigningAlg: doc.TokenEndpointAuthSigningAlg, GrantTypes: grants, Metadata: map[string]any{"client_uri": doc.ClientURI}}, nil
}

// documentHost is the host that published a metadata-document client ("" for registered clients): the one thing
// about such a client that nobody else can claim.
func documentHost(clientID string) string {
	if !clientmeta.IsURL(clientID) {
		return ""
	}
	u, _ := url.Parse(clientID)
	return u.Host
}

// loopbackOnly reports whether every redirect URI returns to this computer: such a client can be run by anyone, so
// its name proves nothing.
func loopbackOnly(uris []string) bool {
	return len(uris) > 0 && !slices.ContainsFunc(uris, func(raw string) bool {
		u, err := url.Parse(raw)
		return err != nil || !isLoopback(u.Hostname())
	})
}

func asDocumentError(err error) (*clientmeta.Error, bool) {
	var me *clientmeta.Error
	ok := errors.As(err, &me)
	return me, ok
}
