// Package broker gives each user's MCP server process that user's own upstream credentials: `{token:<upstream>}` in
// an --env value becomes the user's current access token for the upstream, `{token_file:<upstream>}` the path of a
// 0600 file that holds it and is kept current while the process runs. The tokens come from the authserver's broker
// endpoint (docs/connections.md), asked for the caller's user id at the process's start, so that a process never holds
// another user's token. A user who has not connected the upstream gets a ConnectRequired error naming the page where
// they do; the transport turns it into the protocol's URL-mode elicitation.
//
// A token is never logged, never put in a URL and never part of an error.
package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrBroker marks a failure to get a token for a reason other than a missing connection: the broker is unreachable,
// refuses the secret, does not know the upstream, or the upstream's refresh failed.
var ErrBroker = errors.New("the credential broker did not give a token")

// Client asks the authserver's broker endpoint for users' upstream tokens.
type Client struct {
	URL    string // the authserver's internal base URL, e.g. http://authserver:9001
	Secret string // the shared secret, sent as a bearer token
	HTTP   *http.Client
}

// Token is a user's current access token for one upstream.
type Token struct {
	AccessToken string
	ExpiresAt   time.Time // zero: unknown
}

// Connect is an upstream the user has yet to connect, and the page where they do.
type Connect struct {
	Upstream    string
	DisplayName string
	URL         string // bound to the user, single use, short-lived
}

// ConnectRequired is returned when the user has not connected an upstream the process needs.
type ConnectRequired struct {
	Connects []Connect
}

func (e *ConnectRequired) Error() string {
	names := make([]string, len(e.Connects))
	for i, c := range e.Connects {
		names[i] = c.Upstream
	}
	return "the user has not connected " + strings.Join(names, ", ")
}

// requestTimeout bounds one call to the broker, which may refresh the token with the upstream first.
const requestTimeout = 15 * time.Second

// Token asks for the user's current token for the upstream.
func (c *Client) Token(ctx context.Context, user, upstream string) (Token, error) {
	body, _ := json.Marshal(map[string]string{"user": user, "upstream": upstream})
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/connections/token", bytes.NewReader(body))
	if err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrBroker, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Secret)
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrBroker, err)
	}
	defer resp.Body.Close()
	var answer struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresAt   int64  `json:"expires_at"`
		Error       string `json:"error"`
		DisplayName string `json:"display_name"`
		ConnectURL  string `json:"connect_url"`
	}
	// The answer holds a token: it is decoded, never quoted in an error.
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer); err != nil {
		return Token{}, fmt.Errorf("%w: upstream %q: HTTP %d with a body that is not the broker's JSON (is --broker-url the authserver's internal listener, and --broker-secret set on both?)", ErrBroker, upstream, resp.StatusCode)
	}
	switch {
	case resp.StatusCode == http.StatusOK && answer.AccessToken != "":
		if strings.ContainsRune(answer.AccessToken, 0) {
			return Token{}, fmt.Errorf("%w: upstream %q: the token holds a NUL byte", ErrBroker, upstream)
		}
		t := Token{AccessToken: answer.AccessToken}
		if answer.ExpiresAt > 0 {
			t.ExpiresAt = time.Unix(answer.ExpiresAt, 0)
		}
		return t, nil
	case resp.StatusCode == http.StatusNotFound && answer.Error == "not_connected":
		u, err := url.Parse(answer.ConnectURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return Token{}, fmt.Errorf("%w: upstream %q: the broker's connect_url is not an absolute http(s) URL", ErrBroker, upstream)
		}
		name := answer.DisplayName
		if name == "" {
			name = upstream
		}
		return Token{}, &ConnectRequired{Connects: []Connect{{Upstream: upstream, DisplayName: name, URL: answer.ConnectURL}}}
	case answer.Error != "":
		return Token{}, fmt.Errorf("%w: upstream %q: HTTP %d %s", ErrBroker, upstream, resp.StatusCode, answer.Error)
	default:
		return Token{}, fmt.Errorf("%w: upstream %q: HTTP %d without a token", ErrBroker, upstream, resp.StatusCode)
	}
}
