// Command streamproxy serves MCP Streamable HTTP in front of an unmodified stdio MCP server: one child process per
// session for the session revisions (2025-03-26 to 2025-11-25), one per user for the stateless revision, 2026-07-28:
//
//	streamproxy [flags] -- <command> [args...]
//
// It knows nothing about OAuth: the gateway's plugin in front of it authenticates and sets the identity headers,
// which streamproxy uses to bind each session to its user and, with --policy, to decide who may use which tool.
// Every flag also reads STREAMPROXY_<FLAG> (upper case, "-" as "_").
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/flagenv"
	"github.com/mcp-oauth-gateway/gateway/internal/observe"
	"github.com/mcp-oauth-gateway/gateway/internal/tracing"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/affinity"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/broker"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/metrics"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/peruser"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/policy"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/sandbox"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/transport"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == sandbox.LaunchArg {
		// A child starting: restrict this process and become the MCP server (or, probing, say the ABI applied).
		if err := sandbox.Launch(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "streamproxy:", err)
			os.Exit(126)
		}
		os.Exit(0)
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "streamproxy:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	// Before any child starts: they run as this account and must not read the proxy's secrets.
	if err := protectFromChildren(); err != nil {
		return err
	}
	fs := flag.NewFlagSet("streamproxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on (loopback by default: only the gateway should reach it)")
	path := fs.String("path", "/mcp", "the MCP endpoint's path")
	userHeader := fs.String("user-header", "X-User-Id", "identity header set by the gateway, required on every request; sessions and per-user processes are bound to it (empty: serve without identities)")
	secret := fs.String("secret", "", "secret Traefik adds to every request in "+transport.SecretHeader+"; requests without it are refused (set it through STREAMPROXY_SECRET, not on the command line)")
	var origins, childEnv, passEnv, peers, allowRead, allowWrite, allowConnect flagenv.List
	fs.Var(&origins, "allowed-origins", "browser origins allowed besides loopback ones, comma separated (\"*\": any)")
	fs.Var(&childEnv, "env", "KEY=value added to the MCP server's environment (repeatable, comma separated); {user} in a value becomes the caller's id, {token:<upstream>} the caller's access token for a connected upstream, {token_file:<upstream>} the path of a 0600 file holding it, kept current (docs/connections.md)")
	fs.Var(&passEnv, "pass-env", "names of the proxy's environment variables the MCP server also gets, beyond PATH, HOME, USER, LANG, LC_*, TZ, TMPDIR (comma separated)")
	workdir := fs.String("workdir", "", "working directory of the MCP server (default: the proxy's); {user} becomes the caller's id, the directory is created 0700")
	maxSessions := fs.Int("max-sessions", 200, "most MCP server processes at once (sessions, 2026-07-28 users and --pool's waiting ones); beyond it 503 with Retry-After; size it as the memory for MCP servers divided by one process's RSS (docs/streamproxy.md)")
	// Read before oneProc lowers it: Go's default is the CPUs this process may use, a container's CPU limit included.
	maxStarting := fs.Int("max-starting", runtime.GOMAXPROCS(0), "most MCP server processes starting at once, from their spawn until they first answer; more wait in line, first come first served (default: the CPUs the proxy may use, its container's CPU limit included, as a start is CPU work; 0: no limit)")
	startWait := fs.Duration("start-wait", 20*time.Second, "longest a new session or 2026-07-28 worker waits for its turn to start under --max-starting; then 503 with Retry-After (0: as long as its client waits)")
	poolSize := fs.Int("pool", 0, "MCP server processes started ahead, waiting for new sessions and 2026-07-28 users, refilled in the background; they count against --max-sessions (0: none; not for a command with per-user settings or credentials)")
	hideRoots := fs.Bool("hide-client-roots", false, "roots never reach the MCP server: it is not told that a client offers them, its roots/list gets no roots from the proxy, and clients' roots notifications and answers are kept from it (for servers such as server-filesystem, which replace the directories they were started with by a client's roots)")
	share := fs.Int("share", 0, "serve every user with this many processes of the MCP server, requests spread over them, on both paths (0: one process per session and per 2026-07-28 user); only for servers that keep nothing between calls, see docs/streamproxy.md")
	shareMaxCalls := fs.Int("share-max-calls", 64, "with --share: most calls in flight at one shared process; a call beyond it waits up to --share-max-wait for one to end, then gets 503 with Retry-After (0: no limit)")
	shareMaxWait := fs.Duration("share-max-wait", 100*time.Millisecond, "with --share: longest a call waits, first come first served, for a shared process below --share-max-calls; then 503 with Retry-After (0: refused at once)")
	maxPerUser := fs.Int("max-per-user", 10, "most MCP server processes of one user (sessions plus their 2026-07-28 process): a new one recycles the user's least recently used idle session, or gets 429 when all are busy (0: no limit)")
	maxStreams := fs.Int("max-streams-per-user", 20, "most streams one user holds open (sessions' GET streams and 2026-07-28 subscriptions/listen streams); beyond it 429 with Retry-After (0: no limit)")
	maxCalls := fs.Int("max-calls-per-user", 50, "most requests of one user in flight at once; beyond it 429 with Retry-After (0: no limit)")
	idle := fs.Duration("idle-timeout", 30*time.Minute, "end a session or a user's 2026-07-28 process after this long without activity (0: never)")
	reqTimeout := fs.Duration("request-timeout", 0, "fail a request after this long (0: no limit; tools may run long)")
	keepAlive := fs.Duration("keepalive", 15*time.Second, "interval of SSE keep-alive comments")
	backlog := fs.Int("backlog", 256, "server-initiated events kept per session for Last-Event-ID resumption")
	maxBody := fs.Int64("max-body", 4<<20, "largest POST body in bytes")
	readTimeout := fs.Duration("read-timeout", 30*time.Second, "time a client has to send a request's headers and body (0: no limit); what follows (a long call, a stream) is not bounded by it")
	connIdle := fs.Duration("conn-idle-timeout", 2*time.Minute, "close a client's connection after this long without a request (0: as --read-timeout)")
	logFormat := fs.String("log-format", "auto", "log format: text, json, or auto (json unless stderr is a terminal)")
	var logLevel slog.Level
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "least severe level logged: debug (adds a line per policy decision), info, warn or error")
	fs.Var(&peers, "peers", "base URLs of every replica serving this MCP server, this one included, comma separated: each user's requests go to one of them, passed on with a proof keyed with --secret, which they need (empty: this replica serves everyone)")
	self := fs.String("self", "", "this replica's base URL as it appears in --peers")
	policyFile := fs.String("policy", "", "policy file (YAML, docs/policy.md): who may use which tool, prompt and resource, rate limits; a file that does not load stops the start (empty: everyone may use everything)")
	policyPoll := fs.Duration("policy-reload", 5*time.Second, "how often the policy file is read for changes; a change that does not load leaves the last good policy in force (0: never)")
	var identity transport.IdentityHeaders
	fs.StringVar(&identity.Login, "login-header", "X-User-Name", "header with the caller's login, for the policy (empty: none)")
	fs.StringVar(&identity.Email, "email-header", "X-User-Email", "header with the caller's verified email, for the policy (empty: none)")
	fs.StringVar(&identity.Client, "client-header", "X-Client-Id", "header with the OAuth client's id, for the policy (empty: none)")
	fs.StringVar(&identity.Scopes, "scopes-header", "X-Scopes", "header with the token's scopes, space separated, for the policy (empty: none)")
	fs.StringVar(&identity.Groups, "groups-header", "X-User-Groups", "header with the caller's groups, comma separated, for the policy (empty: none)")
	fs.StringVar(&identity.ResourceMetadata, "resource-metadata-header", "X-Resource-Metadata", "header with the URL of the resource's RFC 9728 metadata, named in step-up challenges (empty: none)")
	auditLog := fs.String("audit-log", audit.Stdout, "where the audit trail goes, one JSON object a line: stdout, off, a file's path (appended to, created 0600), or otlp (log records to the collector OTEL_EXPORTER_OTLP_ENDPOINT names)")
	serverName := fs.String("server-name", "", "the MCP server's name in the audit trail (default: the command's file name)")
	var auditArgs flagenv.List
	fs.Var(&auditArgs, "audit-arguments", "tools whose call arguments the audit trail records, comma separated, \"*\" for every tool; members named like a secret (token, password, secret, key, ...) are redacted (default: none; arguments hold users' data)")
	brokerURL := fs.String("broker-url", "", "the authserver's internal base URL (its --feed-listen), e.g. http://authserver:9001, which gives each user's upstream tokens for {token:...} and {token_file:...}")
	brokerSecret := fs.String("broker-secret", "", "secret shared with the authserver's broker (its --broker-secret; set it through STREAMPROXY_BROKER_SECRET, not on the command line)")
	tokenDir := fs.String("token-dir", filepath.Join(os.TempDir(), "streamproxy-tokens"), "directory of the {token_file:...} files: <dir>/<user>/<process>/<upstream>, each directory 0700, each file 0600, removed when the process ends")
	metricsListen := fs.String("metrics-listen", "", "address of a separate listener serving Prometheus metrics at /metrics, e.g. :9090 (empty: off)")
	sandboxMode := fs.String("sandbox", sandbox.ModeAuto, "confine each MCP server process with Landlock: auto (where the kernel can), required (refuse to start without it), off")
	fs.Var(&allowRead, "sandbox-allow-read", "paths confined MCP servers may also read and execute beneath (comma separated)")
	fs.Var(&allowWrite, "sandbox-allow-write", "paths every confined MCP server may also write beneath, shared by all users (comma separated)")
	fs.Var(&allowConnect, "sandbox-allow-connect", "the only TCP ports confined MCP servers may connect to (comma separated; none: no port; empty: any), on kernels with Landlock ABI 4 or later")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: streamproxy [flags] -- <command> [args...]\n\nEvery flag also reads STREAMPROXY_<FLAG>.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := flagenv.Apply(fs, "STREAMPROXY", nil); err != nil {
		return err
	}
	command := fs.Args()
	if len(command) == 0 {
		fs.Usage()
		return errors.New("no MCP server command given after --")
	}

	perUser := peruser.Settings{Env: childEnv, Dir: *workdir}
	if perUser.Uses() && *userHeader == "" {
		return errors.New(peruser.Placeholder + " in --env or --workdir needs an identity: keep --user-header set")
	}

	if *maxStarting < 0 {
		return errors.New("--max-starting must be 0 (no limit) or a number of processes")
	}
	if *startWait < 0 {
		return errors.New("--start-wait must be 0 (no limit) or a duration")
	}
	if *share < 0 {
		return errors.New("--share must be 0 (off) or a number of processes")
	}
	if *shareMaxCalls < 0 {
		return errors.New("--share-max-calls must be 0 (no limit) or a number of calls")
	}
	if *shareMaxWait < 0 {
		return errors.New("--share-max-wait must be 0 (refuse at once) or a duration")
	}
	if *share > 0 && perUser.Uses() {
		return errors.New("--share cannot serve " + peruser.Placeholder + " in --env or --workdir: shared processes serve every user with one environment and directory; drop --share to give each user their own process, or drop " + peruser.Placeholder)
	}

	// The log is written in batches: a line per request written on its own was a system call, and a wake-up of the
	// log's reader, per call (docs/streamproxy.md#cost-per-call). Flushed last, after every deferred close has logged.
	logOut := observe.NewBatchWriter(os.Stderr, observe.LogDelay)
	defer logOut.Flush()
	log, err := observe.NewLoggerAt(*logFormat, logLevel, logOut)
	if err != nil {
		return err
	}
	oneProc()
	creds, err := broker.NewInjector(childEnv, *workdir, &broker.Client{URL: *brokerURL, Secret: *brokerSecret,
		HTTP: &http.Client{Timeout: 20 * time.Second}}, *tokenDir, log)
	if err != nil {
		return err
	}
	if creds != nil && *share > 0 {
		return errors.New("--share cannot serve {token:...} or {token_file:...} in --env: a shared process would carry one user's token for every user; drop --share to give each user their own process")
	}
	if creds != nil && *userHeader == "" {
		return errors.New("{token:...} and {token_file:...} in --env need an identity: keep --user-header set")
	}
	if *share > 0 && *poolSize > 0 {
		return errors.New("--pool has nothing to start ahead with --share: the shared processes start with streamproxy and serve every new session at once; drop --pool")
	}
	if err := checkPool(*poolSize, *maxSessions, perUser.Uses(), creds != nil); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		log.Warn("running as root: the MCP servers run as root too, and a root process can read this one's memory and environment, the secret included; run streamproxy as an unprivileged account (the container image does)")
	}
	reg := observe.NewRegistry()
	counters := metrics.New(reg)
	var sharedCounters *metrics.Shared
	if *share > 0 {
		sharedCounters = metrics.NewShared(reg)
	}
	var rules *policy.Source
	if *policyFile != "" {
		if rules, err = policy.Open(*policyFile, log, counters.PolicyReload); err != nil {
			return err
		}
	}
	trail, err := audit.Open(*auditLog, audit.Options{Service: "streamproxy", Registerer: reg, Namespace: "streamproxy", Log: log})
	if err != nil {
		return fmt.Errorf("--audit-log: %w", err)
	}
	defer trail.Close()
	traces, err := tracing.Setup(context.Background(), "streamproxy", log)
	if err != nil {
		return err
	}
	defer traces.Close()
	if *serverName == "" {
		*serverName = filepath.Base(command[0])
	}

	box, boxStatus, err := sandbox.Setup(sandbox.Config{Mode: *sandboxMode, AllowRead: allowRead, AllowWrite: allowWrite,
		AllowConnect: allowConnect}, command)
	if err != nil {
		return err
	}
	if boxStatus.ABI > 0 {
		log.Info("sandbox: each MCP server process is confined by Landlock", "landlock_abi", boxStatus.ABI)
		for _, name := range perUser.SharedDirFiles() {
			log.Warn("sandbox: a confined server cannot create or replace its user's file in a directory all users share; give each user a directory: "+name+"=/dir/{user}/file", "env", name)
		}
	} else {
		log.Warn("sandbox: MCP server processes are NOT confined: users' processes are kept apart only by the servers themselves", "reason", boxStatus.Reason)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "streamproxy", Name: "sandbox_landlock_abi",
		Help: "The Landlock ABI each MCP server process is confined with; 0: none (--sandbox off, or a kernel without Landlock)."},
		func() float64 { return float64(boxStatus.ABI) }))

	mcp := transport.New(transport.Config{
		Command: session.Command{Path: command[0], Args: command[1:], Env: session.Env(passEnv, childEnv), Dir: *workdir,
			Sandbox: box},
		UserHeader:     *userHeader,
		MaxPerUser:     *maxPerUser,
		Pool:           *poolSize,
		MaxStarting:    *maxStarting,
		StartWait:      *startWait,
		UserStreams:    *maxStreams,
		UserCalls:      *maxCalls,
		HideRoots:      *hideRoots,
		Share:          *share,
		ShareMaxCalls:  *shareMaxCalls,
		ShareMaxWait:   *shareMaxWait,
		SharedMetrics:  sharedCounters,
		AllowedOrigins: origins,
		MaxSessions:    *maxSessions,
		IdleTimeout:    *idle,
		RequestTimeout: *reqTimeout,
		KeepAlive:      *keepAlive,
		Backlog:        *backlog,
		MaxBody:        *maxBody,
		Logger:         log,
		Metrics:        counters,
		Policy:         rules,
		Identity:       identity,
		Audit:          trail,
		ServerName:     *serverName,
		AuditArguments: auditArgs,
		Credentials:    creds,
	})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "streamproxy", Name: "sessions_active",
		Help: "MCP sessions open now."}, func() float64 { return float64(mcp.Sessions()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "streamproxy", Name: "workers_active",
			Help: "Users with an MCP server process for 2026-07-28 requests now."}, func() float64 { return float64(mcp.Workers()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "streamproxy", Name: "shared_processes",
			Help: "Shared MCP server processes running now (--share); 0 without it."}, func() float64 { return float64(mcp.SharedProcesses()) }))
	routed, err := affinity.Handler(mcp, affinity.Config{Peers: peers, Self: *self, UserHeader: *userHeader, Secret: *secret, Log: log})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(*path, transport.RequireSecret(*secret, routed))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "sessions": mcp.Sessions(), "workers": mcp.Workers(),
			"sandbox": boxStatus})
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// ReadTimeout bounds reading a request's headers and body only: net/http lifts the read deadline once the body
	// is read, so a long call or a stream is not cut by it. No WriteTimeout: an SSE stream writes for hours.
	headerTimeout := 10 * time.Second
	if *readTimeout > 0 {
		headerTimeout = min(headerTimeout, *readTimeout)
	}
	// No HTTP span: each MCP request's operation (package transport) is the server span, continuing the edge's trace;
	// a span around it would be a second one per call for nothing an operator reads.
	srv := &http.Server{Handler: observe.Handler(tracing.Extract(mux), log, observe.NewMetrics(reg, "streamproxy")),
		ReadHeaderTimeout: headerTimeout, ReadTimeout: *readTimeout, IdleTimeout: *connIdle}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if rules != nil && *policyPoll > 0 {
		go rules.Watch(ctx, *policyPoll)
	}
	if *metricsListen != "" {
		if _, err := observe.ServeMetrics(ctx, *metricsListen, reg, log); err != nil {
			return err
		}
	}
	go func() {
		<-ctx.Done()
		log.Info("shutting down: ending sessions")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		go mcp.Close() // ends open SSE streams, so Shutdown need not wait for them
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Info("streamproxy listening", "addr", ln.Addr().String(), "path", *path, "command", command[0],
		"gomaxprocs", runtime.GOMAXPROCS(0))
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	mcp.Close()
	return nil
}

// checkPool refuses a pool that would mix users or cannot fit: a process started ahead is started for nobody, so its
// command must be the same for every user.
func checkPool(size, maxSessions int, perUser, credentials bool) error {
	switch {
	case size < 0:
		return fmt.Errorf("--pool %d: give a number of processes, 0 for none", size)
	case size == 0:
		return nil
	case perUser:
		return errors.New("--pool cannot start processes ahead for a command with per-user settings ({user} in --env or --workdir): each user's process is started for them; drop --pool, or the per-user settings if the server keeps nothing per user")
	case credentials:
		return errors.New("--pool cannot start processes ahead for a command that holds the user's credentials ({token:...} or {token_file:...} in --env): each user's process is started with their token; drop --pool")
	case maxSessions > 0 && size > maxSessions:
		return fmt.Errorf("--pool %d is more than --max-sessions %d, which counts the processes waiting in the pool too: lower --pool or raise --max-sessions", size, maxSessions)
	}
	return nil
}

// oneProc runs the proxy's Go code on one processor unless the GOMAXPROCS variable says otherwise. The proxy's own
// work per call is small and waits on I/O (the servers are processes of their own, on the other cores); with more
// processors every goroutine woken (by the client's request, the server's answer) also wakes an idle processor's
// thread to look for work, and those wake-ups cost more than the call's own work: a third of the proxy's CPU per
// call on the 2-core machine, with the same calls/s at 16 and 64 sessions (docs/streamproxy.md#cost-per-call).
func oneProc() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
