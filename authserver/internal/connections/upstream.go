package connections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Upstream is an OAuth 2.0 provider at which users connect an account: by its endpoints, or by its issuer through
// OpenID discovery (read at first use, so an upstream that is down does not stop the server).
type Upstream struct {
	Name        string // lower-case letters, digits and -; in URLs, flags and the broker's requests
	DisplayName string // what people read ("GitLab")
	Issuer      string // OpenID discovery; or AuthURL and TokenURL
	AuthURL     string
	TokenURL    string
	ClientID    string
	// ClientSecret is empty for a public client (PKCE alone).
	ClientSecret string
	Scopes       []string
	// FromLogin: the upstream is also the login provider of the same name (GitHub, an OpenID provider), whose
	// logins keep their token as the user's connection (Keep), with Scopes asked for at login.
	FromLogin bool
	// SecretInForm: the client authenticates with client_secret_post, as GitHub documents it (default: basic).
	SecretInForm bool
	// RevokeURL is the upstream's token revocation endpoint (RFC 7009), where a disconnect revokes the user's
	// tokens; with Issuer, discovery's revocation_endpoint is used when this is empty. None known: a disconnect
	// forgets the tokens here, and they stay valid at the upstream until they expire or the user revokes the app there.
	RevokeURL string
}

var upstreamName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CheckName reports whether name can name an upstream: it appears in flags, paths and the broker's requests.
func CheckName(name string) error {
	if !upstreamName.MatchString(name) {
		return fmt.Errorf("upstream name %q: use lower-case letters, digits and - (at most 63)", name)
	}
	return nil
}

// Check reports what makes u unusable, naming the setting.
func (u Upstream) Check() error {
	if err := CheckName(u.Name); err != nil {
		return err
	}
	if u.ClientID == "" {
		return fmt.Errorf("upstream %s: no client id (--upstream-%s-client-id)", u.Name, u.Name)
	}
	if (u.Issuer == "") == (u.AuthURL == "" || u.TokenURL == "") {
		return fmt.Errorf("upstream %s: give either its issuer (--upstream-%s-issuer, OpenID discovery) or both its "+
			"authorization and token endpoints (--upstream-%s-auth-url, --upstream-%s-token-url)", u.Name, u.Name, u.Name, u.Name)
	}
	for _, raw := range []string{u.Issuer, u.AuthURL, u.TokenURL, u.RevokeURL} {
		if raw == "" {
			continue
		}
		p, err := url.Parse(raw)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return fmt.Errorf("upstream %s: %q is not an http(s) URL", u.Name, raw)
		}
	}
	return nil
}

// upstream is a configured Upstream with its endpoints, discovered once.
type upstream struct {
	Upstream
	redirect string
	client   *http.Client

	mu       sync.Mutex
	endpoint oauth2.Endpoint // zero until known
	revoke   string          // the revocation endpoint, once endpoint is known; "" when there is none
}

// config is the OAuth client towards the upstream; ErrUpstreamUnavailable when discovery fails.
func (u *upstream) config(ctx context.Context) (*oauth2.Config, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.endpoint.TokenURL == "" {
		u.revoke = u.RevokeURL
		if u.Issuer == "" {
			u.endpoint = oauth2.Endpoint{AuthURL: u.AuthURL, TokenURL: u.TokenURL}
		} else {
			p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, u.client), u.Issuer)
			if err != nil {
				return nil, fmt.Errorf("%w: discovery of %s: %w", ErrUpstreamUnavailable, u.Issuer, err)
			}
			var meta struct {
				Revocation string `json:"revocation_endpoint"`
			}
			if err := p.Claims(&meta); err == nil && u.revoke == "" {
				u.revoke = meta.Revocation
			}
			u.endpoint = p.Endpoint()
		}
		// One way to authenticate, never x/oauth2's guessing: on a refused refresh token it tries the other way,
		// and the upstream's answer to that (invalid_client) would hide the invalid_grant that ends the connection.
		// A confidential client uses client_secret_basic, which every server must support (RFC 6749 §2.3.1).
		u.endpoint.AuthStyle = oauth2.AuthStyleInHeader
		if u.ClientSecret == "" || u.SecretInForm {
			u.endpoint.AuthStyle = oauth2.AuthStyleInParams
		}
	}
	return &oauth2.Config{ClientID: u.ClientID, ClientSecret: u.ClientSecret, Endpoint: u.endpoint,
		RedirectURL: u.redirect, Scopes: u.Scopes}, nil
}

// revokeToken asks the upstream to revoke token (RFC 7009), the client authenticating as it does at the token
// endpoint. It reports false, without asking, when the upstream has no revocation endpoint.
func (u *upstream) revokeToken(ctx context.Context, token, hint string) (bool, error) {
	cfg, err := u.config(ctx)
	if err != nil {
		return false, err
	}
	u.mu.Lock()
	endpoint := u.revoke
	u.mu.Unlock()
	if endpoint == "" {
		return false, nil
	}
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	inHeader := cfg.Endpoint.AuthStyle == oauth2.AuthStyleInHeader
	if !inHeader {
		form.Set("client_id", cfg.ClientID)
		if cfg.ClientSecret != "" {
			form.Set("client_secret", cfg.ClientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if inHeader {
		// RFC 6749 §2.3.1: the id and secret are form-encoded before they are put in the basic credentials.
		req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("%w: revocation at %s: %w", ErrUpstreamUnavailable, endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&e)
		return false, fmt.Errorf("revocation at %s: HTTP %d %s", endpoint, resp.StatusCode, e.Error)
	}
	return true, nil
}

// withClient makes x/oauth2 use the upstream's HTTP client.
func (u *upstream) withClient(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, u.client)
}

// revoked reports whether the upstream refused a refresh token as no longer valid (RFC 6749 §5.2 invalid_grant):
// the user revoked the app there, or the token expired.
func revoked(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}
