package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// server is what discovery learns about an MCP server and its authorization server.
type server struct {
	Resource             string // the protected resource (RFC 9728 "resource"): the token's audience
	Issuer               string
	TokenEndpoint        string
	DeviceEndpoint       string
	RegistrationEndpoint string
}

var resourceMetadataParam = regexp.MustCompile(`resource_metadata="([^"]+)"`)

// discover follows the MCP authorization discovery: a request without a token gets a 401 naming the protected
// resource metadata (RFC 9728), which names the authorization server, whose metadata (RFC 8414) names its endpoints.
func discover(ctx context.Context, hc *http.Client, mcpURL string) (*server, error) {
	u, err := url.Parse(mcpURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL of an MCP server", mcpURL)
	}
	prmURL := ""
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, mcpURL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		if m := resourceMetadataParam.FindStringSubmatch(resp.Header.Get("WWW-Authenticate")); m != nil {
			prmURL = m[1]
		}
	} else {
		return nil, fmt.Errorf("reach the MCP server: %w", err)
	}
	if prmURL == "" { // RFC 9728 §3.1: the well-known URL with the resource's path appended
		prmURL = u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.Path, "/")
	}
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := getJSON(ctx, hc, prmURL, &prm); err != nil {
		return nil, fmt.Errorf("protected resource metadata: %w", err)
	}
	if prm.Resource == "" || len(prm.AuthorizationServers) == 0 {
		return nil, fmt.Errorf("protected resource metadata at %s names no resource or authorization server", prmURL)
	}
	// RFC 9728 §3.3: metadata for another resource must not be used, or a server (or whoever answers at the metadata
	// URL its 401 named) could have this tool fetch a token for some other MCP server and hand it over.
	if canonicalURL(prm.Resource) != canonicalURL(mcpURL) {
		return nil, fmt.Errorf("protected resource metadata at %s is for %q, not for %q (RFC 9728 §3.3): refusing it; "+
			"give mcp-token the MCP server's exact URL", prmURL, prm.Resource, mcpURL)
	}
	issuer := strings.TrimSuffix(prm.AuthorizationServers[0], "/")
	var asm struct {
		Issuer                      string `json:"issuer"`
		TokenEndpoint               string `json:"token_endpoint"`
		DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
		RegistrationEndpoint        string `json:"registration_endpoint"`
	}
	if err := getJSON(ctx, hc, issuer+"/.well-known/oauth-authorization-server", &asm); err != nil {
		return nil, fmt.Errorf("authorization server metadata: %w", err)
	}
	if asm.Issuer != issuer {
		return nil, fmt.Errorf("authorization server metadata names issuer %q, not %q (RFC 8414 §3.3): refusing it", asm.Issuer, issuer)
	}
	if asm.DeviceAuthorizationEndpoint == "" {
		return nil, fmt.Errorf("the authorization server %s does not offer the device flow (no device_authorization_endpoint)", issuer)
	}
	return &server{Resource: prm.Resource, Issuer: issuer, TokenEndpoint: asm.TokenEndpoint,
		DeviceEndpoint: asm.DeviceAuthorizationEndpoint, RegistrationEndpoint: asm.RegistrationEndpoint}, nil
}

// canonicalURL is the form in which two spellings of one resource URL compare equal (RFC 8707 §2, as the MCP
// authorization spec canonicalizes): scheme and host in lower case, no default port, no fragment, no trailing
// slash. A URL that does not parse is returned as it is.
func canonicalURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80") {
		u.Host = u.Hostname()
	}
	u.Fragment, u.RawFragment = "", ""
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String()
}

// register registers a public client for the device grant (RFC 7591) and returns its id.
func register(ctx context.Context, hc *http.Client, endpoint string) (string, error) {
	if endpoint == "" {
		return "", errors.New("the authorization server has no registration endpoint: pass --client-id")
	}
	body, _ := json.Marshal(map[string]any{
		"client_name": "mcp-token", "token_endpoint_auth_method": "none",
		"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("register a client: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID    string `json:"client_id"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return "", fmt.Errorf("register a client: HTTP %d: unreadable answer: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusCreated || out.ClientID == "" {
		return "", fmt.Errorf("register a client: HTTP %d: %s: %s", resp.StatusCode, out.Error, out.Description)
	}
	return out.ClientID, nil
}

func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}
