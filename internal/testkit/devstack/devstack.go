// Package devstack runs the whole gateway on one machine, on loopback, without Docker: Traefik with the plugin as a
// local plugin, the authorization server (embedded store or Redis), the fake GitHub (or an OpenID provider, Options.OIDC),
// and one streamproxy per MCP server, in either routing layout of traefik/dynamic/gateway.yml (the dynamic configuration users deploy).
// cmd/devstack and the end-to-end tests use it.
package devstack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/freeport"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/localplugin"
)

// Service is one MCP server behind the gateway.
type Service struct {
	Name    string   // path segment: /<Name>/mcp
	Command []string // stdio MCP server run by streamproxy, or nil for Addr
	Addr    string   // an MCP server already serving Streamable HTTP at http://Addr/mcp
	Flags   []string // extra streamproxy flags
	// Replicas, when more than one, runs that many streamproxies for the service with --peers, each named
	// mcp-<Name>-<i> (from 0), Traefik balancing between them.
	Replicas int
	// ScopesSupported are advertised in its protected-resource metadata (default: the scopes a token needs, mcp).
	ScopesSupported []string
}

// Options configure a stack.
type Options struct {
	Root         string // repository root
	Port         int    // public port of Traefik
	DataDir      string // state and generated config
	RedisURL     string // empty: the embedded store in DataDir
	AllowedUsers string // GitHub logins allowed in; default the fake GitHub's dev user
	// Layout is "path" (default: http://localhost:PORT/<service>/mcp, the authserver on the same origin) or
	// "subdomain" (http://<service>.localhost:PORT/mcp, the authserver at http://auth.localhost:PORT). Browsers
	// resolve *.localhost to loopback by themselves; other clients need Client() or a resolver that does.
	Layout string
	// OIDC, when set, logs users in through an OpenID provider: instead of the fake GitHub, or beside it (a chooser)
	// with OIDC.WithGitHub.
	OIDC *OIDC
	// AuthserverFlags are added to the authorization server\'s command line.
	AuthserverFlags []string
	Services        []Service
	Log             io.Writer // where the processes' output goes
	// AuthserverVia, when set, gives the address at which Traefik reaches each of the authorization server's
	// listeners (its own and its revocation feed's, each given as host:port): a relay the test controls, e.g. across
	// a network link it can cut (the fault tests).
	AuthserverVia func(addr string) (string, error)
	// OTLPEndpoint, when set, turns tracing on: Traefik, the authserver and every streamproxy send their spans over
	// OTLP/HTTP to this base URL (e.g. a jaegertest.Jaeger's OTLPHTTP), each span sampled.
	OTLPEndpoint string
}

// OIDC is an OpenID provider the stack logs users in with, and the client registered with it, whose redirect URI
// is the stack's issuer followed by /oidc/<Name>/callback (Stack.OIDCCallbackURL).
type OIDC struct {
	Name        string // the provider's name in the authserver's settings and callback path; default "sso"
	DisplayName string // what users read; default the authserver's (the name, capitalized)
	Issuer      string
	ClientID    string
	// ClientSecret, sent to the authserver in its environment (never on a command line).
	ClientSecret string
	// Flags are more authserver flags for the provider, e.g. its allow rules (--oidc-<name>-allowed-email-domains ...).
	// Without an allow rule anyone the provider authenticates is let in (--oidc-<name>-allowed-subjects '*'): the stack
	// listens on loopback only.
	Flags []string
	// WithGitHub keeps the fake GitHub beside the provider: the login starts with a chooser.
	WithGitHub bool
}

// ProviderName is the provider's name, "sso" unless set.
func (o *OIDC) ProviderName() string {
	if o.Name == "" {
		return "sso"
	}
	return o.Name
}

// OIDCCallbackURL is the redirect URI to register at the OpenID provider for a stack on this port and layout.
func OIDCCallbackURL(layout string, port int, name string) string {
	if layout == "subdomain" {
		return fmt.Sprintf("http://auth.localhost:%d/oidc/%s/callback", port, name)
	}
	return fmt.Sprintf("http://localhost:%d/oidc/%s/callback", port, name)
}

// Stack is a running gateway.
type Stack struct {
	Issuer   string            // the authorization server's public URL
	URLs     map[string]string // service name -> MCP URL
	Metrics  map[string]string // component (authserver, mcp-<service>, mcp-<service>-<i>) -> its Prometheus metrics URL
	procs    []*proc
	opts     Options
	bin      string
	internal map[string]int // component -> port
	secret   string         // between Traefik and streamproxy: only the gateway speaks for a user
}

type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *prefixWriter
	exited chan struct{} // closed once the process has ended and been waited for
}

// Start builds the binaries and starts every component, returning once the gateway answers.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.AllowedUsers == "" {
		o.AllowedUsers = "dev-user"
	}
	s := &Stack{opts: o, bin: filepath.Join(o.Root, ".cache", "bin"), URLs: map[string]string{}, Metrics: map[string]string{},
		internal: map[string]int{}, secret: rand.Text()}
	switch o.Layout {
	case "", "path":
		o.Layout = "path"
		s.Issuer = fmt.Sprintf("http://localhost:%d", o.Port)
	case "subdomain":
		s.Issuer = fmt.Sprintf("http://auth.localhost:%d", o.Port)
	default:
		return nil, fmt.Errorf("layout %q: want path or subdomain", o.Layout)
	}
	s.opts = o
	traefik := filepath.Join(s.bin, "traefik")
	if _, err := os.Stat(traefik); err != nil {
		return nil, fmt.Errorf("no Traefik binary at %s: run `go tool task deps` first", traefik)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", s.bin+string(filepath.Separator),
		"./authserver", "./streamproxy", "./cmd/fakegithub")
	build.Dir = o.Root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the gateway: %w\n%s", err, out)
	}
	for _, name := range []string{"fakegithub", "authserver", "authserver-metrics", "authserver-feed"} {
		p, err := freeport.Pick()
		if err != nil {
			return nil, err
		}
		s.internal[name] = p
	}
	if err := s.startAll(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Stack) startAll(ctx context.Context) error {
	o := s.opts
	gh := fmt.Sprintf("http://127.0.0.1:%d", s.internal["fakegithub"])
	withGitHub := o.OIDC == nil || o.OIDC.WithGitHub
	if withGitHub {
		if err := s.run(ctx, "fakegithub", []string{filepath.Join(s.bin, "fakegithub"),
			"-listen", fmt.Sprintf("127.0.0.1:%d", s.internal["fakegithub"]), "-callback-url", s.Issuer + "/github/callback"},
			nil, "fake GitHub listening"); err != nil {
			return err
		}
	}
	var resources []string
	for _, svc := range o.Services {
		u := fmt.Sprintf("%s/%s/mcp", s.Issuer, svc.Name)
		if o.Layout == "subdomain" {
			u = fmt.Sprintf("http://%s.localhost:%d/mcp", svc.Name, o.Port)
		}
		resources = append(resources, u)
		s.URLs[svc.Name] = u
	}
	as := []string{filepath.Join(s.bin, "authserver"), "--listen", fmt.Sprintf("127.0.0.1:%d", s.internal["authserver"]),
		"--issuer", s.Issuer, "--resources", strings.Join(resources, ","),
		"--data-file", filepath.Join(o.DataDir, "authserver.jsonl"), "--log-format", "text",
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", s.internal["authserver-metrics"]),
		// The revocation feed on an internal listener of its own, as in compose.yaml: the plugin polls it there.
		"--feed-listen", fmt.Sprintf("127.0.0.1:%d", s.internal["authserver-feed"]),
		"--device-poll-interval", "1s"} // devices (mcp-token) get their tokens a second after approval
	s.Metrics["authserver"] = fmt.Sprintf("http://127.0.0.1:%d/metrics", s.internal["authserver-metrics"])
	if o.RedisURL != "" {
		as = append(as, "--redis-url", o.RedisURL)
	}
	if withGitHub {
		as = append(as, "--github-client-id", "fake-github-client-id", "--github-client-secret", "fake-github-client-secret",
			"--github-web-url", gh+"/", "--github-api-url", gh+"/api/v3/", "--allowed-github-users", o.AllowedUsers)
	}
	var asEnv []string
	if p := o.OIDC; p != nil {
		name := p.ProviderName()
		flag := func(setting string) string { return "--oidc-" + name + "-" + setting }
		as = append(as, "--oidc-providers", name, flag("issuer"), p.Issuer, flag("client-id"), p.ClientID)
		if p.DisplayName != "" {
			as = append(as, flag("display-name"), p.DisplayName)
		}
		if !slices.ContainsFunc(p.Flags, func(f string) bool { return strings.HasPrefix(f, flag("allowed-")) }) {
			as = append(as, flag("allowed-subjects"), "*")
		}
		as = append(as, p.Flags...)
		asEnv = append(asEnv, "AUTHSERVER_OIDC_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))+"_CLIENT_SECRET="+p.ClientSecret)
	}
	as = append(as, o.AuthserverFlags...)
	if err := s.run(ctx, "authserver", as, append(asEnv, s.tracingEnv()...), "authserver listening"); err != nil {
		return err
	}
	backends := map[string]string{}
	for _, svc := range o.Services {
		if svc.Addr != "" {
			backends[svc.Name] = "http://" + svc.Addr
			continue
		}
		replicas := make([]string, max(svc.Replicas, 1))
		for i := range replicas {
			port, err := freeport.Pick()
			if err != nil {
				return err
			}
			replicas[i] = fmt.Sprintf("http://127.0.0.1:%d", port)
		}
		for i, self := range replicas {
			name := "mcp-" + svc.Name
			if len(replicas) > 1 {
				name = fmt.Sprintf("mcp-%s-%d", svc.Name, i)
			}
			metricsPort, err := freeport.Pick()
			if err != nil {
				return err
			}
			args := []string{filepath.Join(s.bin, "streamproxy"), "--listen", strings.TrimPrefix(self, "http://"),
				"--log-format", "text", "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPort), "--server-name", svc.Name}
			if len(replicas) > 1 {
				args = append(args, "--peers", strings.Join(replicas, ","), "--self", self)
			}
			args = append(args, svc.Flags...)
			s.Metrics[name] = fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
			args = append(append(args, "--"), svc.Command...)
			env := append([]string{"STREAMPROXY_SECRET=" + s.secret}, s.tracingEnv()...)
			if err := s.run(ctx, name, args, env, "streamproxy listening"); err != nil {
				return err
			}
		}
		backends[svc.Name] = strings.Join(replicas, ",") // Traefik balances between them
	}
	dir := filepath.Join(o.DataDir, "traefik")
	static, env, err := s.writeTraefikConfig(dir, backends)
	if err != nil {
		return err
	}
	tr := exec.CommandContext(ctx, filepath.Join(s.bin, "traefik"), "--configFile="+static)
	tr.Dir = dir // local plugins load from ./plugins-local
	tr.Env = append(os.Environ(), env...)
	if err := s.start("traefik", tr); err != nil {
		return err
	}
	// Ready when the plugin serves the protected-resource metadata (so the plugin compiled) for every service.
	deadline := time.Now().Add(60 * time.Second)
	client := Client()
	for _, svc := range o.Services {
		u, err := url.Parse(s.URLs[svc.Name])
		if err != nil {
			return err
		}
		u.Path = "/.well-known/oauth-protected-resource" + u.Path
		for {
			resp, err := client.Get(u.String())
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("traefik did not serve %s within a minute (see its log)", u.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// tracingEnv is the environment that turns a service's tracing on (the standard OTEL_* variables), or none. Spans
// are sent in small, quick batches, so that a test or a developer finds a trace within a second.
func (s *Stack) tracingEnv() []string {
	if s.opts.OTLPEndpoint == "" {
		return nil
	}
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + s.opts.OTLPEndpoint, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY=200"}
}

// writeTraefikConfig writes the static configuration and assembles the local plugin from plugin/; it returns the
// static configuration's path and the environment that renders traefik/dynamic/gateway.yml (the dynamic
// configuration users deploy) for this stack.
func (s *Stack) writeTraefikConfig(dir string, backends map[string]string) (string, []string, error) {
	// Access logs go to stdout as in production (JSON, headers dropped but the request id), so tests can check
	// what they record.
	extra := map[string]any{"accessLog": map[string]any{"format": "json", "fields": map[string]any{"headers": map[string]any{
		"defaultMode": "drop", "names": map[string]string{"X-Request-Id": "keep"},
	}}}}
	if s.opts.OTLPEndpoint != "" {
		// Traefik's own tracing, as traefik/traefik.yml has it: its entry span's context reaches the services in
		// traceparent, through the plugin.
		extra["tracing"] = map[string]any{"serviceName": "traefik", "sampleRate": 1.0,
			"otlp": map[string]any{"http": map[string]any{"endpoint": s.opts.OTLPEndpoint + "/v1/traces"}}}
	}
	static, err := localplugin.Setup(dir, localplugin.Static{
		Address:     fmt.Sprintf("127.0.0.1:%d", s.opts.Port),
		DynamicFile: filepath.Join(s.opts.Root, "traefik", "dynamic", "gateway.yml"),
		LogLevel:    "WARN",
		Plugins:     []localplugin.Plugin{localplugin.Gateway(s.opts.Root)},
		Extra:       extra,
	})
	if err != nil {
		return "", nil, err
	}
	as, feed := fmt.Sprintf("127.0.0.1:%d", s.internal["authserver"]), fmt.Sprintf("127.0.0.1:%d", s.internal["authserver-feed"])
	if via := s.opts.AuthserverVia; via != nil {
		if as, err = via(as); err == nil {
			feed, err = via(feed)
		}
		if err != nil {
			return "", nil, fmt.Errorf("the way from Traefik to the authserver: %w", err)
		}
	}
	env := []string{
		"GATEWAY_LAYOUT=" + s.opts.Layout, "GATEWAY_DOMAIN=localhost", "GATEWAY_SCHEME=http",
		fmt.Sprintf("GATEWAY_PORT=%d", s.opts.Port), "GATEWAY_ENTRYPOINT=web", "GATEWAY_CERT_RESOLVER=none",
		"AUTHSERVER_URL=http://" + as, "AUTHSERVER_FEED_URL=http://" + feed + "/revocations",
		"STREAMPROXY_SECRET=" + s.secret,
	}
	var names []string
	for _, svc := range s.opts.Services {
		names = append(names, svc.Name)
		v := "MCP_" + strings.ToUpper(strings.ReplaceAll(svc.Name, "-", "_"))
		env = append(env, fmt.Sprintf("%s_URL=%s", v, backends[svc.Name]))
		if len(svc.ScopesSupported) > 0 {
			env = append(env, v+"_SCOPES_SUPPORTED="+strings.Join(svc.ScopesSupported, ","))
		}
	}
	return static, append(env, "MCP_SERVICES="+strings.Join(names, ",")), nil
}

// Client is an HTTP client that resolves localhost and every *.localhost name to 127.0.0.1, as browsers do
// (RFC 6761), so that Go code can reach the subdomain layout without /etc/hosts entries.
func Client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return dial(ctx, network, addr)
	}
	return &http.Client{Transport: t}
}

// run starts a component and waits for the line that says it serves.
func (s *Stack) run(ctx context.Context, name string, args []string, env []string, ready string) error {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = s.opts.Root
	w := &prefixWriter{name: name, to: s.opts.Log, want: ready, seen: make(chan struct{})}
	if err := s.startWith(name, cmd, w); err != nil {
		return err
	}
	select {
	case <-w.seen:
		return nil
	case <-s.procs[len(s.procs)-1].exited:
		return fmt.Errorf("%s exited before it served: %v (its output is above)", name, cmd.ProcessState)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not start within 30 s (its output is above)", name)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Stack) start(name string, cmd *exec.Cmd) error {
	return s.startWith(name, cmd, &prefixWriter{name: name, to: s.opts.Log})
}

func (s *Stack) startWith(name string, cmd *exec.Cmd, w *prefixWriter) error {
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: w, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	s.procs = append(s.procs, p)
	return nil
}

// Stop ends every component, the last started first.
func (s *Stack) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	s.procs = nil
}

// Restart stops one component and starts it again with the same command line (for restart tests).
func (s *Stack) Restart(ctx context.Context, name, ready string) error {
	return s.restart(ctx, name, ready, nil)
}

// Crash kills one component with SIGKILL, as a crash or the OOM killer would, and starts it again with the same
// command line, as a supervisor would (for the fault tests). An empty ready returns once it has started.
func (s *Stack) Crash(ctx context.Context, name, ready string) error {
	return s.stopAndStart(ctx, name, ready, syscall.SIGKILL, nil)
}

// Signal sends sig to one component (SIGSTOP and SIGCONT freeze and thaw it).
func (s *Stack) Signal(name string, sig syscall.Signal) error {
	for _, p := range s.procs {
		if p.name == name {
			return p.cmd.Process.Signal(sig)
		}
	}
	return errors.New("no component named " + name)
}

// SetAllowedUsers restarts the authorization server with another allow list of GitHub logins.
func (s *Stack) SetAllowedUsers(ctx context.Context, users string) error {
	return s.restart(ctx, "authserver", "authserver listening", func(args []string) []string {
		for i, a := range args[:len(args)-1] {
			if a == "--allowed-github-users" {
				args[i+1] = users
			}
		}
		return args
	})
}

// SetGitHubUser restarts the fake GitHub so that the next logins are another user's (GitHub login and numeric id):
// a second person using the same gateway.
func (s *Stack) SetGitHubUser(ctx context.Context, login string, id int64) error {
	return s.restart(ctx, "fakegithub", "fake GitHub listening", func(args []string) []string {
		return append(args, "-login", login, "-user-id", strconv.FormatInt(id, 10), "-name", login,
			"-email", login+"@example.test")
	})
}

func (s *Stack) restart(ctx context.Context, name, ready string, edit func(args []string) []string) error {
	return s.stopAndStart(ctx, name, ready, syscall.SIGTERM, edit)
}

func (s *Stack) stopAndStart(ctx context.Context, name, ready string, sig syscall.Signal, edit func(args []string) []string) error {
	for i, p := range s.procs {
		if p.name != name {
			continue
		}
		_ = p.cmd.Process.Signal(sig)
		<-p.exited
		s.procs = append(s.procs[:i], s.procs[i+1:]...)
		args := slices.Clone(p.cmd.Args)
		if edit != nil {
			args = edit(args)
		}
		if ready == "" {
			cmd := exec.CommandContext(ctx, args[0], args[1:]...)
			cmd.Env, cmd.Dir = p.cmd.Env, p.cmd.Dir
			return s.start(name, cmd)
		}
		// The same environment: exec keeps the last value of a repeated variable, so these win over run's.
		return s.run(ctx, name, args, p.cmd.Env, ready)
	}
	return errors.New("no component named " + name)
}

// prefixWriter writes a component's output line by line with its name, and notices its ready line.
type prefixWriter struct {
	mu   sync.Mutex
	name string
	to   io.Writer
	buf  []byte
	want string
	seen chan struct{}
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		fmt.Fprintf(w.to, "%-14s %s\n", w.name, line)
		if w.want != "" && w.seen != nil && strings.Contains(line, w.want) {
			close(w.seen)
			w.seen = nil
		}
	}
	return len(p), nil
}
