package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mcp-oauth-gateway/gateway/bench/internal/mcpclient"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/oauthflow"
)

// forwardAuth is the ForwardAuth baseline (forwardAuthVerifier) and a token it accepts, issued by the authserver.
type forwardAuth struct {
	verifyURL string
	token     string
}

// startForwardAuth starts the authserver (embedded store) protecting resource, obtains a real access token for it
// through the browser flow, and starts the verifier that checks it against the authserver's keys.
func startForwardAuth(e *env, s *Section, resource string) (*forwardAuth, error) {
	ctx := context.Background()
	as, err := startAuthserver(e, "embedded", []string{resource})
	if err != nil {
		return nil, err
	}
	s.Commands = append(s.Commands, relPath(as.command)+"   # issues the ForwardAuth baseline's token; the baseline itself (bench/forwardauth_baseline.go) runs in the bench process")
	flow := &oauthflow.AS{Issuer: as.issuer, Resource: resource, Scope: "mcp", HTTP: &http.Client{Transport: mcpclient.NewHTTPTransport()}}
	c, err := flow.Register(ctx, "bench-forwardauth")
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	code, err := flow.Authorize(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	t, err := flow.Exchange(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("exchange: %w", err)
	}
	verifyURL, err := startForwardAuthVerifier(e, as.issuer, resource, "mcp")
	if err != nil {
		return nil, err
	}
	return &forwardAuth{verifyURL: verifyURL, token: t.AccessToken}, nil
}
