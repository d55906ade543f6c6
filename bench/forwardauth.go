package main

import (
	"context"
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
// through the browser flow, and starts the verifier that checks it against the authserver's keys. It returns nil,
// with a note, when that fails: the rest of the edge section still runs.
func startForwardAuth(e *env, s *Section, resource string) (fa *forwardAuth) {
	defer func() {
		switch r := recover().(type) {
		case nil:
		case abortError:
			s.note("ForwardAuth baseline not measured: %v", r.err)
			fa = nil
		case skipError:
			s.note("ForwardAuth baseline not measured: %s", r.reason)
			fa = nil
		default:
			panic(r)
		}
	}()
	ctx := context.Background()
	as := startAuthserver(e, s, "embedded", []string{resource})
	s.Commands = append(s.Commands, relPath(as.command)+"   # issues the ForwardAuth baseline's token; the baseline itself (bench/forwardauth_baseline.go) runs in the bench process")
	flow := &oauthflow.AS{Issuer: as.issuer, Resource: resource, Scope: "mcp", HTTP: &http.Client{Transport: mcpclient.NewHTTPTransport()}}
	c, err := flow.Register(ctx, "bench-forwardauth")
	e.check(err, "register")
	code, err := flow.Authorize(ctx, c)
	e.check(err, "authorize")
	t, err := flow.Exchange(ctx, code)
	e.check(err, "exchange")
	return &forwardAuth{verifyURL: startForwardAuthVerifier(e, as.issuer, resource, "mcp"), token: t.AccessToken}
}
