// Command mcp-token gets an access token for one MCP server behind the gateway by the device flow (RFC 8628), for
// scripts and headless clients, and keeps it in a file only its owner can read:
//
//	mcp-token get https://gw.example.com/everything/mcp      # discover, register, log in on any browser, save
//	curl -H "Authorization: Bearer $(mcp-token print https://gw.example.com/everything/mcp)" ...
//	mcp-token refresh https://gw.example.com/everything/mcp  # new tokens now (print refreshes when needed)
//
// No GitHub token is involved: the user logs in through the gateway's own authorization server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mcp-token:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  mcp-token get <mcp-url> [--file F] [--client-id ID] [--scope S]   log in by the device flow and save the tokens
  mcp-token print <mcp-url> | --file F                              print the access token (refreshed if it expires soon)
  mcp-token refresh <mcp-url> | --file F                            refresh the tokens now

The token file defaults to <user config dir>/mcp-oauth-gateway/tokens/<host and path of the URL>.json, mode 0600.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd := args[0]
	fs := flag.NewFlagSet("mcp-token "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "token file")
	clientID := fs.String("client-id", "", "get: a client registered for the device grant (default: register one)")
	scope := fs.String("scope", "", "get: scopes to ask for (default: the server's default)")
	// Flags may come before or after the URL.
	var rest []string
	for a := args[1:]; len(a) > 0; {
		if err := fs.Parse(a); err != nil {
			return err
		}
		if a = fs.Args(); len(a) > 0 {
			rest, a = append(rest, a[0]), a[1:]
		}
	}
	mcpURL := ""
	if len(rest) > 0 {
		mcpURL = rest[0]
	}
	path := *file
	if path == "" {
		if mcpURL == "" {
			return errors.New("give the MCP server's URL or --file")
		}
		p, err := defaultFile(mcpURL)
		if err != nil {
			return err
		}
		path = p
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	switch cmd {
	case "get":
		if mcpURL == "" {
			return errors.New("get needs the MCP server's URL")
		}
		return get(ctx, hc, mcpURL, path, *clientID, *scope, stderr)
	case "print":
		f, err := readTokenFile(path)
		if err != nil {
			return err
		}
		if time.Until(f.Expiry) < time.Minute {
			if err := refresh(ctx, f, path); err != nil {
				return err
			}
		}
		fmt.Fprintln(stdout, f.AccessToken)
		return nil
	case "refresh":
		f, err := readTokenFile(path)
		if err != nil {
			return err
		}
		if err := refresh(ctx, f, path); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "refreshed; the access token is valid until %s (%s)\n", f.Expiry.Format(time.RFC3339), path)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// defaultFile names a token file per MCP server in the user's configuration directory.
func defaultFile(mcpURL string) (string, error) {
	u, err := url.Parse(mcpURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL", mcpURL)
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory for the token file (%w): pass --file", err)
	}
	name := strings.Trim(strings.NewReplacer("/", "_", ":", "_").Replace(u.Host+u.Path), "_")
	return filepath.Join(dir, "mcp-oauth-gateway", "tokens", name+".json"), nil
}

func get(ctx context.Context, hc *http.Client, mcpURL, path, clientID, scope string, stderr io.Writer) error {
	srv, err := discover(ctx, hc, mcpURL)
	if err != nil {
		return err
	}
	if clientID == "" {
		if clientID, err = register(ctx, hc, srv.RegistrationEndpoint); err != nil {
			return err
		}
	}
	cfg := oauthConfig(srv.TokenEndpoint, clientID)
	cfg.Endpoint.DeviceAuthURL = srv.DeviceEndpoint
	if scope != "" {
		cfg.Scopes = strings.Fields(scope)
	}
	resource := oauth2.SetAuthURLParam("resource", srv.Resource) // RFC 8707: a token for this MCP server only
	da, err := cfg.DeviceAuth(ctx, resource)
	if err != nil {
		return fmt.Errorf("start the device flow: %w", err)
	}
	fmt.Fprintf(stderr, "To let mcp-token use %s, open\n\n  %s\n\nin any browser and confirm the code %s. Waiting...\n",
		srv.Resource, da.VerificationURIComplete, da.UserCode)
	tok, err := cfg.DeviceAccessToken(ctx, da, resource)
	if err != nil {
		return fmt.Errorf("device flow: %w", err)
	}
	f := &tokenFile{MCPURL: mcpURL, Resource: srv.Resource, Issuer: srv.Issuer, TokenEndpoint: srv.TokenEndpoint,
		ClientID: clientID}
	f.set(tok)
	if err := f.write(path); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "Saved to %s (readable by you only). Use: mcp-token print %s\n", path, mcpURL)
	return nil
}

// refresh rotates the tokens (the server issues a new refresh token each time) and saves them at once, so the
// used refresh token is never the one left in the file.
func refresh(ctx context.Context, f *tokenFile, path string) error {
	if f.RefreshToken == "" {
		return errors.New("the token file has no refresh token: run `mcp-token get` again")
	}
	cfg := oauthConfig(f.TokenEndpoint, f.ClientID)
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: f.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return fmt.Errorf("refresh (if the grant was revoked or expired, run `mcp-token get` again): %w", err)
	}
	f.set(tok)
	return f.write(path)
}

func oauthConfig(tokenEndpoint, clientID string) *oauth2.Config {
	return &oauth2.Config{ClientID: clientID,
		Endpoint: oauth2.Endpoint{TokenURL: tokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
}

func (f *tokenFile) set(tok *oauth2.Token) {
	f.TokenType, f.AccessToken, f.Expiry = tok.Type(), tok.AccessToken, tok.Expiry
	if tok.RefreshToken != "" {
		f.RefreshToken = tok.RefreshToken
	}
}
