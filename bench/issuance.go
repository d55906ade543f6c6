package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/mcp-oauth-gateway/gateway/bench/internal/load"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/mcpclient"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/oauthflow"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/report"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/stats"
)

// issueResource is the MCP resource the issuance benchmark's tokens are for (nothing serves it; only the
// authserver's configuration and the token's aud name it).
const issueResource = "http://127.0.0.1:9/bench/mcp"

func issuanceSection(e *env, cfg Config, s *Section) error {
	ctx := context.Background()
	stores := []string{"redis", "embedded"}
	ops := []string{"register", "code exchange", "refresh rotation"}
	type key struct{ store, op string }
	runs := map[key]*repRuns{}
	for _, st := range stores {
		as, err := startAuthserver(e, st, []string{issueResource})
		if err != nil {
			return err
		}
		s.Commands = append(s.Commands, relPath(as.command))
		flow := &oauthflow.AS{Issuer: as.issuer, Resource: issueResource, Scope: "mcp",
			HTTP: &http.Client{Transport: mcpclient.NewHTTPTransport()}}
		clients := make([]*oauthflow.Client, cfg.Clients)
		for i := range clients {
			c, err := flow.Register(ctx, "bench-"+strconv.Itoa(i))
			if err != nil {
				return fmt.Errorf("register a client (%s): %w", st, err)
			}
			clients[i] = c
		}
		record := func(op string, r load.Result, err error) error {
			if err != nil {
				return fmt.Errorf("%s on %s: %w", op, st, err)
			}
			if r.Errors > 0 {
				return fmt.Errorf("%s on %s: %d of %d failed, first: %w", op, st, r.Errors, r.Errors+r.Ops, r.FirstErr)
			}
			k := key{st, op}
			if runs[k] == nil {
				runs[k] = &repRuns{}
			}
			l := stats.Summarize(r.Latencies)
			runs[k].add(r.PerSecond(), stats.Ms(l.P50), stats.Ms(l.P99))
			return nil
		}
		// Warm-up: registrations and a few exchanges, not recorded.
		_, err = load.Run(ctx, load.Options{Workers: cfg.Clients, Duration: cfg.Warmup}, func(ctx context.Context, _ int, seq int64) error {
			_, err := flow.Register(ctx, "bench-warm-"+strconv.FormatInt(seq, 10))
			return err
		})
		if err != nil {
			return fmt.Errorf("warm-up on %s: %w", st, err)
		}
		warmCodes, err := prepareCodes(ctx, flow, clients, 2*cfg.Clients)
		if err != nil {
			return err
		}
		for _, c := range warmCodes {
			if _, err := flow.Exchange(ctx, c); err != nil {
				return fmt.Errorf("warm-up exchange on %s: %w", st, err)
			}
		}
		for range cfg.Reps {
			// Registration.
			r, err := load.Run(ctx, load.Options{Workers: cfg.Clients, Duration: cfg.IssueRun}, func(ctx context.Context, _ int, seq int64) error {
				_, err := flow.Register(ctx, "bench-reg-"+strconv.FormatInt(seq, 10))
				return err
			})
			if err := record("register", r, err); err != nil {
				return err
			}

			// Code exchange: codes come from the real browser flow, outside the timed part. The first Clients
			// exchanges start the refresh chains.
			codes, err := prepareCodes(ctx, flow, clients, max(cfg.IssueCodes, cfg.Clients))
			if err != nil {
				return err
			}
			chains := make([]string, cfg.Clients)
			r, err = load.Run(ctx, load.Options{Workers: cfg.Clients, Total: int64(len(codes))}, func(ctx context.Context, _ int, seq int64) error {
				t, err := flow.Exchange(ctx, codes[seq])
				if err == nil && seq < int64(len(chains)) {
					chains[seq] = t.RefreshToken
				}
				return err
			})
			if err := record("code exchange", r, err); err != nil {
				return err
			}

			// Refresh rotation: worker w rotates chain w (its client is the one of codes[w]) back to back.
			for i, c := range chains {
				if c == "" {
					return fmt.Errorf("exchange %d on %s returned no refresh token", i, st)
				}
			}
			r, err = load.Run(ctx, load.Options{Workers: cfg.Clients, Duration: cfg.IssueRun}, func(ctx context.Context, w int, _ int64) error {
				t, err := flow.Refresh(ctx, codes[w].Client, chains[w])
				if err != nil {
					return err
				}
				chains[w] = t.RefreshToken
				return nil
			})
			if err := record("refresh rotation", r, err); err != nil {
				return err
			}
		}
	}
	s.Doc.P("The authserver runs as its own process, once on a real redis-server and once on the embedded store; %d "+
		"concurrent clients (closed loop, keep-alive). Registration registers confidential clients "+
		"(`client_secret_post`), so every call generates and hashes a secret. Codes for the exchange come from the real "+
		"browser flow (authorize, fake GitHub login, consent page approved, redirect), %d per repetition, prepared "+
		"outside the timed part; the exchange uses PKCE (S256) and `resource`. Refresh rotation: each client rotates its "+
		"own refresh token chain back to back.", cfg.Clients, cfg.IssueCodes)
	var rows [][]string
	for _, op := range ops {
		for _, st := range stores {
			r := runs[key{st, op}]
			rps := stats.Of(r.rps)
			rows = append(rows, []string{op, st, report.Num(rps.Median), report.Pct(rps.RelSpread()),
				report.MsF(stats.Of(r.p50).Median), report.MsF(stats.Of(r.p99).Median)})
		}
	}
	s.Doc.Table([]string{"operation", "store", "req/s", "spread", "p50", "p99"}, rows)
	ex := runs[key{"redis", "code exchange"}]
	rate, p99 := stats.Of(ex.rps).Median, stats.Of(ex.p99).Median
	s.set("issuance.redis.exchange.rps", rate)
	s.set("issuance.redis.register.rps", stats.Of(runs[key{"redis", "register"}].rps).Median)
	s.set("issuance.embedded.exchange.rps", stats.Of(runs[key{"embedded", "code exchange"}].rps).Median)
	met := rate >= 2000 && p99 < 20
	s.verdict(fmt.Sprintf(">= 2,000 token exchanges/s with p99 under 20 ms on Redis (%d clients)", cfg.Clients),
		fmt.Sprintf("%s/s, p99 %s", report.Num(rate), report.MsF(p99)), met,
		whyIf(!met, "each exchange verifies the client secret, redeems the code atomically in Redis, signs an ES256 JWT, records the jti and stores a refresh token (several Redis round trips); the 2 cores are shared by Redis, the authserver and the load generator"))
	reg := stats.Of(runs[key{"redis", "register"}].rps).Median
	s.verdict("registration not bottlenecked by password hashing (Hydra with BCrypt: 60/s)", fmt.Sprintf("%s registrations/s on Redis", report.Num(reg)),
		reg > 600, whyIf(reg <= 600, "registration rate is within 10x of a BCrypt-bound server"))
	return nil
}

// prepareCodes runs the browser flow n times, spread over the clients, with as many flows in flight as clients.
func prepareCodes(ctx context.Context, flow *oauthflow.AS, clients []*oauthflow.Client, n int) ([]*oauthflow.Code, error) {
	codes := make([]*oauthflow.Code, n)
	r, err := load.Run(ctx, load.Options{Workers: len(clients), Total: int64(n)}, func(ctx context.Context, w int, seq int64) error {
		c, err := flow.Authorize(ctx, clients[seq%int64(len(clients))])
		codes[seq] = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prepare codes: %w", err)
	}
	if r.Errors > 0 {
		return nil, fmt.Errorf("browser flow: %d of %d failed, first: %w", r.Errors, n, r.FirstErr)
	}
	return codes, nil
}
