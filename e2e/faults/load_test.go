package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/clientprofile"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/devstack"
)

// The kinds of work the load does, as the results table names them.
const (
	kindRegister = "registrations"
	kindCall     = "tool calls"
	kindRefresh  = "refreshes"
	kindRevoke   = "revocations"
	kindTS       = "TypeScript SDK"
	kindGoSDK    = "Go SDK 2026-07-28"
	kindMemory   = "server-memory writes"
)

// outcome is one operation of the load: when it started, and how it ended.
type outcome struct {
	start time.Time
	err   error
}

// recorder keeps every operation's outcome by kind.
type recorder struct {
	mu  sync.Mutex
	ops map[string][]outcome
}

func (r *recorder) note(kind string, start time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ops == nil {
		r.ops = map[string][]outcome{}
	}
	r.ops[kind] = append(r.ops[kind], outcome{start, err})
}

// seen is what one kind of work saw in a window: its failures (with their distinct reasons), and how long after the
// window's start the first operation succeeded that started after its last failure.
type seen struct {
	ok, failed int
	reasons    []string
	resumed    time.Duration // 0 when nothing failed
}

func (r *recorder) window(kind string, from, to time.Time) seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s seen
	var lastFail time.Time
	for _, o := range r.ops[kind] {
		if o.start.Before(from) || o.start.After(to) {
			continue
		}
		if o.err == nil {
			s.ok++
			continue
		}
		s.failed++
		lastFail = o.start
		if r := reason(o.err); !slices.Contains(s.reasons, r) {
			s.reasons = append(s.reasons, r)
		}
	}
	if s.failed == 0 {
		return s
	}
	for _, o := range r.ops[kind] {
		if o.err == nil && o.start.After(lastFail) && !o.start.After(to) {
			s.resumed = o.start.Sub(from)
			break
		}
	}
	return s
}

// okSince reports whether every kind has succeeded in an operation it started at or after t.
func (r *recorder) okSince(t time.Time, which []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range which {
		if !slices.ContainsFunc(r.ops[k], func(o outcome) bool { return o.err == nil && !o.start.Before(t) }) {
			return false
		}
	}
	return true
}

// reason shortens an error to what a person reads in the table: the HTTP status or the network failure.
func reason(err error) string {
	s := err.Error()
	for _, known := range []string{"connection refused", "connection reset", "EOF", "timeout", "deadline exceeded",
		"invalid_grant", "invalid_client", "no space left on device"} {
		if strings.Contains(s, known) {
			return known
		}
	}
	if i := strings.Index(s, "HTTP "); i >= 0 && len(s) >= i+8 {
		return s[i : i+8]
	}
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// ledger holds what the gateway acknowledged, to be found again after each fault.
type ledger struct {
	mu      sync.Mutex
	clients []string // registrations answered 201
	// entities were created in server-memory, the call answered
	entities []string
	revoked  []revocation // access tokens whose revocation was answered 200
	// logins counts refresh tokens refused as invalid_grant: a grant lost, and a user sent to log in again.
	logins []string
}

type revocation struct {
	token string
	at    time.Time
	// refusedAt is when the edge first refused the token (zero until it has).
	refusedAt time.Time
}

// load is steady work from real clients through the gateway.
type load struct {
	stack   *devstack.Stack
	mcpURL  string
	node    string // Node 22
	nodeDir string // testdata/node
	rec     *recorder
	led     *ledger
	http    *http.Client
	// memoryURL, when set, is server-memory behind the gateway: a user writes to it (kindMemory).
	memoryURL string
	kinds     []string // what the load does
	wg        sync.WaitGroup
	cancel    context.CancelFunc
	errs      chan error // a worker that could not start
}

// start runs every worker until stop.
func (l *load) start(users int) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.errs = make(chan error, users+5)
	l.kinds = []string{kindCall, kindRefresh, kindRevoke, kindRegister, kindTS, kindGoSDK}
	if l.memoryURL != "" {
		l.kinds = append(l.kinds, kindMemory)
		l.run(ctx, l.memory)
	}
	l.run(ctx, l.registrations)
	for i := range users {
		l.run(ctx, func(ctx context.Context) { l.user(ctx, i) })
	}
	l.run(ctx, l.typescript)
	l.run(ctx, l.goSDK)
	l.run(ctx, l.watchRevocations)
}

func (l *load) run(ctx context.Context, f func(context.Context)) {
	l.wg.Add(1)
	go func() { defer l.wg.Done(); f(ctx) }()
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// pause waits d, or less if the load is stopped.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// registrations registers a public client (as the MCP SDKs do) every quarter second.
func (l *load) registrations(ctx context.Context) {
	body := `{"client_name":"fault suite","redirect_uris":["http://127.0.0.1:39997/callback"],` +
		`"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}`
	for ctx.Err() == nil {
		start := time.Now()
		id, err := l.register(ctx, body)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			l.led.mu.Lock()
			l.led.clients = append(l.led.clients, id)
			l.led.mu.Unlock()
		}
		l.rec.note(kindRegister, start, err)
		pause(ctx, 250*time.Millisecond)
	}
}

func (l *load) register(ctx context.Context, body string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.stack.Issuer+"/register", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ClientID    string `json:"client_id"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated || out.ClientID == "" {
		return "", fmt.Errorf("register: HTTP %d: %s %s", resp.StatusCode, out.Error, out.Description)
	}
	return out.ClientID, nil
}

// user is one person's client (Cursor's, as internal/testkit/clientprofile replays it): logged in once through the
// code flow, then calling a tool, refreshing now and then, and revoking its access token now and then, as a user
// who signs out of one device does. A refresh refused as invalid_grant is a lost grant: the user logs in again,
// and the ledger counts it.
func (l *load) user(ctx context.Context, n int) {
	s := clientprofile.New(clientprofile.Cursor(), clientprofile.Env{MCPURL: l.mcpURL, HTTP: l.http})
	if err := l.connect(ctx, s); err != nil {
		l.errs <- fmt.Errorf("user %d: first login: %w", n, err)
		return
	}
	for i := 1; ctx.Err() == nil; i++ {
		start := time.Now()
		_, err := callTool(ctx, s)
		if ctx.Err() != nil {
			return
		}
		l.rec.note(kindCall, start, err)
		// A 401 asks for a new token; a 404 says the session is gone (its replica or process died), and a 400 that
		// it never began (the last initialize failed): the client opens a new one, after a refresh.
		reopen := err != nil && (strings.Contains(err.Error(), "HTTP 404") || strings.Contains(err.Error(), "send initialize first"))
		if i%4 == 0 || reopen || (err != nil && strings.Contains(err.Error(), "HTTP 401")) {
			l.refresh(ctx, s, reopen)
		}
		if i%10 == 5 {
			l.revoke(ctx, s)
		}
		pause(ctx, 200*time.Millisecond)
	}
}

// connect logs a user in, retrying while the gateway is down.
func (l *load) connect(ctx context.Context, s *clientprofile.Session) error {
	var err error
	for range 60 {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = s.Connect(cctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		pause(ctx, time.Second)
	}
	return err
}

func callTool(ctx context.Context, s *clientprofile.Session) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.CallTool(ctx, "echo", map[string]any{"message": "under fault"})
}

// refresh renews the user's tokens as its client does, and with reopen opens a new MCP session. The refresh token
// is kept until an answer brings its successor, so a refresh whose answer was lost is repeated with the same token
// (the reuse window's case).
func (l *load) refresh(ctx context.Context, s *clientprofile.Session, reopen bool) {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	refresh := s.RefreshTokens
	if reopen {
		refresh = s.Refresh
	}
	err := refresh(rctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	l.rec.note(kindRefresh, start, err)
	if err != nil && strings.Contains(err.Error(), "invalid_grant") {
		l.led.mu.Lock()
		l.led.logins = append(l.led.logins, fmt.Sprintf("%s: %v", start.Format(time.TimeOnly), err))
		l.led.mu.Unlock()
		_ = l.connect(ctx, s)
	}
}

// revoke revokes the user's access token at /revoke (RFC 7009) and refreshes for a new one.
func (l *load) revoke(ctx context.Context, s *clientprofile.Session) {
	start := time.Now()
	tok := s.Res.AccessToken
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	req, _ := http.NewRequestWithContext(rctx, http.MethodPost, l.stack.Issuer+"/revoke",
		strings.NewReader(url.Values{"token": {tok}, "client_id": {s.Res.ClientID}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := l.http.Do(req)
	cancel()
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("revoke: HTTP %d", resp.StatusCode)
		}
	}
	if ctx.Err() != nil {
		return
	}
	l.rec.note(kindRevoke, start, err)
	if err != nil {
		return
	}
	l.led.mu.Lock()
	l.led.revoked = append(l.led.revoked, revocation{token: tok, at: time.Now()})
	l.led.mu.Unlock()
	l.refresh(ctx, s, false)
}

// typescript runs the TypeScript SDK client (testdata/node/e2e-client.mjs) again and again: from the bare MCP URL
// through registration, the code flow and the consent page, a tool call, and a refresh on a 401.
func (l *load) typescript(ctx context.Context) {
	for ctx.Err() == nil {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		cmd := exec.CommandContext(rctx, l.node, "--import", filepath.Join(l.nodeDir, "localhost-resolver.mjs"),
			filepath.Join(l.nodeDir, "e2e-client.mjs"), l.mcpURL)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			var r struct {
				Refreshed bool `json:"refreshed"`
			}
			if jerr := json.Unmarshal(out, &r); jerr != nil || !r.Refreshed {
				err = fmt.Errorf("the client did not refresh: %s", out)
			}
		} else {
			err = fmt.Errorf("%w: %s", err, errorLine(stderr.String()))
		}
		l.rec.note(kindTS, start, err)
		pause(ctx, 500*time.Millisecond)
	}
}

// nodeError is the line where Node names an uncaught error ("TypeError: ...", "UnauthorizedError: ..."), after the
// source line that threw it.
var nodeError = regexp.MustCompile(`(?m)^[A-Za-z]*Error: .*$`)

// errorLine is the line of a Node program's stderr that says what went wrong, else its last line (Node ends with
// its own version).
func errorLine(s string) string {
	if m := nodeError.FindString(s); m != "" {
		return m
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// memory has a user write to server-memory through the Go SDK's client on 2026-07-28 (a worker process of that
// user's, its graph in the user's own file), one entity per call, each a new connection as a stateless client
// makes.
func (l *load) memory(ctx context.Context) {
	hc, refresh, err := l.userClient(ctx, l.memoryURL)
	if err != nil {
		l.errs <- fmt.Errorf("server-memory user: first login: %w", err)
		return
	}
	for i := 0; ctx.Err() == nil; i++ {
		start := time.Now()
		name := fmt.Sprintf("entity-%d", i)
		_, err := callText(ctx, l.memoryURL, hc, "create_entities", map[string]any{
			"entities": []map[string]any{{"name": name, "entityType": "fault", "observations": []string{start.String()}}}})
		if ctx.Err() != nil {
			return
		}
		l.rec.note(kindMemory, start, err)
		if err == nil {
			l.led.mu.Lock()
			l.led.entities = append(l.led.entities, name)
			l.led.mu.Unlock()
		} else if strings.Contains(err.Error(), "Unauthorized") {
			refresh(ctx)
		}
		pause(ctx, 300*time.Millisecond)
	}
}

// callText connects to endpoint, calls a tool and returns its text.
func callText(ctx context.Context, endpoint string, hc *http.Client, tool string, args map[string]any) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "fault-suite", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	if err != nil {
		return "", err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	var text strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			text.WriteString(t.Text)
		}
	}
	if res.IsError {
		return "", fmt.Errorf("%s answered an error: %s", tool, text.String())
	}
	return text.String(), nil
}

// userClient logs a user in for the MCP server at mcpURL and returns an HTTP client that sends the user's access
// token, and a function that refreshes it.
func (l *load) userClient(ctx context.Context, mcpURL string) (*http.Client, func(context.Context), error) {
	s := clientprofile.New(clientprofile.Cursor(), clientprofile.Env{MCPURL: mcpURL, HTTP: l.http})
	if err := l.connect(ctx, s); err != nil {
		return nil, nil, err
	}
	var mu sync.Mutex
	token := func() string { mu.Lock(); defer mu.Unlock(); return s.Res.AccessToken }
	refresh := func(ctx context.Context) {
		mu.Lock()
		defer mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = s.RefreshTokens(rctx)
	}
	return &http.Client{Transport: bearer{base: l.http.Transport, token: token}}, refresh, nil
}

// goSDK connects the Go SDK's client (which speaks 2026-07-28 first) with a user's access token and calls a tool,
// again and again, refreshing that user's token when the edge refuses it.
func (l *load) goSDK(ctx context.Context) {
	hc, refresh, err := l.userClient(ctx, l.mcpURL)
	if err != nil {
		l.errs <- fmt.Errorf("Go SDK user: first login: %w", err)
		return
	}
	for ctx.Err() == nil {
		start := time.Now()
		err := goSDKCall(ctx, l.mcpURL, hc)
		if ctx.Err() != nil {
			return
		}
		l.rec.note(kindGoSDK, start, err)
		if err != nil && strings.Contains(err.Error(), "Unauthorized") {
			refresh(ctx)
		}
		pause(ctx, 300*time.Millisecond)
	}
}

func goSDKCall(ctx context.Context, endpoint string, hc *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "fault-suite", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	if err != nil {
		return err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "2026"}})
	if err != nil {
		return err
	}
	if res.IsError {
		return errors.New("echo answered an error")
	}
	if v := cs.InitializeResult(); v != nil && v.ProtocolVersion != "2026-07-28" {
		return fmt.Errorf("the Go SDK spoke %s, not 2026-07-28", v.ProtocolVersion)
	}
	return nil
}

// bearer adds a user's current access token to each request.
type bearer struct {
	base  http.RoundTripper
	token func() string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token())
	return b.base.RoundTrip(r)
}

// watchRevocations asks the edge, twice a second, about every revoked token it has not refused yet, and notes
// when it first does: the time a revoked token stayed usable.
func (l *load) watchRevocations(ctx context.Context) {
	for ctx.Err() == nil {
		l.led.mu.Lock()
		var open []int
		for i, r := range l.led.revoked {
			if r.refusedAt.IsZero() {
				open = append(open, i)
			}
		}
		tokens := make([]string, len(open))
		for j, i := range open {
			tokens[j] = l.led.revoked[i].token
		}
		l.led.mu.Unlock()
		for j, tok := range tokens {
			if admitted, err := l.edgeAdmits(ctx, tok); err == nil && !admitted {
				now := time.Now()
				l.led.mu.Lock()
				l.led.revoked[open[j]].refusedAt = now
				l.led.mu.Unlock()
			}
		}
		pause(ctx, 500*time.Millisecond)
	}
}

// edgeAdmits reports whether the gateway's edge lets a request with this token through (anything but a 401).
func (l *load) edgeAdmits(ctx context.Context, token string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.mcpURL,
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := l.http.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return false, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode != http.StatusUnauthorized, nil
}
