// Package oauthflow drives the authorization server like an MCP client and a browser would, for benchmark setup:
// register a client, run the authorization code flow with PKCE through the login and consent pages (following
// redirects and submitting the approve form), exchange the code, refresh. Setup only: nothing here is timed except
// the single calls the benchmark wraps (Register, Exchange, Refresh).
package oauthflow

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
)

// RedirectURI is the loopback redirect URI every benchmark client registers (nothing listens there: the flow stops
// at the redirect).
const RedirectURI = "http://127.0.0.1:3000/callback"

// Client is a registered OAuth client.
type Client struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret"`
}

// AS talks to one authorization server.
type AS struct {
	Issuer   string
	Resource string
	Scope    string
	HTTP     *http.Client
}

// Register registers a confidential client (client_secret_post), so the server generates and stores a secret.
func (a *AS) Register(ctx context.Context, name string) (*Client, error) {
	body, _ := json.Marshal(map[string]any{
		"client_name":                name,
		"redirect_uris":              []string{RedirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "client_secret_post",
		"scope":                      a.Scope,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.Issuer+"/register", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("register: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	c := &Client{}
	if err := json.Unmarshal(b, c); err != nil || c.ID == "" {
		return nil, fmt.Errorf("register: no client_id in %s", b)
	}
	return c, nil
}

// Code is an authorization code with what its exchange must repeat.
type Code struct {
	Client   *Client
	Code     string
	Verifier string
}

// Tokens is a token response.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
}

// Authorize runs the browser part of the flow for c and returns the code: /authorize, the IdP login (the fake
// GitHub approves at once), the callback and the consent page (approved), until the redirect to RedirectURI.
func (a *AS) Authorize(ctx context.Context, c *Client) (*Code, error) {
	verifier := randomString(32)
	sum := sha256.Sum256([]byte(verifier))
	state := randomString(12)
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.ID},
		"redirect_uri":          {RedirectURI},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"state":                 {state},
		"scope":                 {a.Scope},
		"resource":              {a.Resource},
	}
	b := browser.New(&http.Client{Transport: a.HTTP.Transport})
	b.Action, b.StopAt = "approve", []string{RedirectURI}
	res, err := b.Run(ctx, a.Issuer+"/authorize?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	if res.Location == nil {
		return nil, fmt.Errorf("authorize: stopped on a page: HTTP %d: %.300s", res.Status, res.Page)
	}
	lq := res.Location.Query()
	if e := lq.Get("error"); e != "" {
		return nil, fmt.Errorf("authorize: redirected with error %s: %s", e, lq.Get("error_description"))
	}
	if lq.Get("state") != state {
		return nil, errors.New("authorize: state not carried through")
	}
	return &Code{Client: c, Code: lq.Get("code"), Verifier: verifier}, nil
}

// Exchange redeems a code at /token.
func (a *AS) Exchange(ctx context.Context, c *Code) (*Tokens, error) {
	return a.token(ctx, c.Client, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {c.Code},
		"redirect_uri":  {RedirectURI},
		"code_verifier": {c.Verifier},
		"resource":      {a.Resource},
	})
}

// Refresh rotates a refresh token.
func (a *AS) Refresh(ctx context.Context, c *Client, refresh string) (*Tokens, error) {
	return a.token(ctx, c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "resource": {a.Resource}})
}

func (a *AS) token(ctx context.Context, c *Client, form url.Values) (*Tokens, error) {
	form.Set("client_id", c.ID)
	if c.Secret != "" {
		form.Set("client_secret", c.Secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.Issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token (%s): HTTP %d: %s", form.Get("grant_type"), resp.StatusCode, strings.TrimSpace(string(b)))
	}
	t := &Tokens{}
	if err := json.Unmarshal(b, t); err != nil || t.AccessToken == "" {
		return nil, fmt.Errorf("token: no access_token in the answer")
	}
	return t, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
