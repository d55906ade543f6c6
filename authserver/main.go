// Command authserver is the gateway's OAuth 2.1 authorization server; users log in through GitHub or OpenID Connect
// providers (Google, Entra ID, Okta, Keycloak, ...), or several of them.
//
//	authserver [serve] [flags]        serve the endpoints (the default)
//	authserver clients|tokens|purge|backup|restore|rotate-keys|generate-secrets ...   operator commands (see --help)
//
// Every flag also reads the environment variable AUTHSERVER_<FLAG> (upper case, "-" as "_"); the GitHub and Redis
// settings also read the names the reference gateway used (GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET,
// ALLOWED_GITHUB_USERS, REDIS_URL).
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientlife"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/grant"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/github"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/metrics"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/backend"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/storetrace"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/flagenv"
	"github.com/mcp-oauth-gateway/gateway/internal/observe"
	"github.com/mcp-oauth-gateway/gateway/internal/tracing"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "authserver:", err)
		os.Exit(1)
	}
}

// settings are the parsed flags.
type settings struct {
	listen, issuer, resources, resourcePatterns, defaultResource, scopes string
	scopeDescriptions, groups                                            string
	ghClientID, ghClientSecret, ghWebURL, ghAPIURL                       string
	allowedUsers, allowedOrgs, allowedTeams                              string
	codeTTL, accessTTL, refreshTTL, clientTTL, authTTL, consentTTL       time.Duration
	grantMaxAge                                                          time.Duration
	refreshLimit                                                         int
	refreshReuseWindow                                                   time.Duration
	authorizePerMinute                                                   float64
	clientFetchPerMinute                                                 float64
	maxPendingPerClient                                                  int
	feedListen                                                           string
	clientUnusedTTL                                                      time.Duration
	deviceTTL, devicePoll                                                time.Duration
	deviceAttempts                                                       float64
	registerPerMinute                                                    float64
	registerBurst                                                        int
	trustedProxies                                                       string
	logFormat, metricsListen                                             string
	auditLog                                                             string
	cimd, cimdAllowPrivate                                               bool
	cimdAllowed, cimdDenied, cimdCAFile                                  string
	cimdTimeout, cimdCacheMin, cimdCacheMax                              time.Duration
	store                                                                backend.Config
	redisAddrs                                                           string
	adminSocket                                                          string
	oidcProviders                                                        string                       // --oidc-providers as given
	oidcOrder                                                            []string                     // its names, in order (read before parsing)
	oidc                                                                 map[string]*oidcSettings     // each one's --oidc-<name>-* flags
	upstreams                                                            string                       // --upstreams as given
	upstreamOrder                                                        []string                     // its names, in order (read before parsing)
	upstream                                                             map[string]*upstreamSettings // each one's --upstream-<name>-* flags
	connectionsKey, connectionsKeyFile, brokerSecret                     string
	tokenExchange                                                        string
}

// aliases are environment names kept from the reference gateway, read when AUTHSERVER_<FLAG> is not set.
var aliases = map[string]string{
	"github-client-id": "GITHUB_CLIENT_ID", "github-client-secret": "GITHUB_CLIENT_SECRET",
	"allowed-github-users": "ALLOWED_GITHUB_USERS", "redis-url": "REDIS_URL", "redis-password": "REDIS_PASSWORD",
}

func flags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("authserver", flag.ContinueOnError)
	fs.StringVar(&s.listen, "listen", ":9000", "address to serve on")
	fs.StringVar(&s.issuer, "issuer", "", "public URL of this server, exactly as clients see it, e.g. https://auth.example.com (required)")
	fs.StringVar(&s.resources, "resources", "", "comma-separated canonical URLs of the protected MCP endpoints, e.g. https://gw.example.com/everything/mcp "+
		"(with neither this nor --resource-patterns: <issuer origin>/mcp and <issuer origin>/*/mcp)")
	fs.StringVar(&s.resourcePatterns, "resource-patterns", "", "comma-separated patterns of protected MCP endpoints, e.g. https://*.example.com/mcp")
	fs.StringVar(&s.defaultResource, "default-resource", "", "resource used when a client sends none (empty: the resource parameter is required)")
	fs.StringVar(&s.scopes, "scopes", "mcp", "comma-separated scopes offered; the first is the default and the one MCP access needs")
	fs.StringVar(&s.scopeDescriptions, "scope-descriptions", "", "what each offered scope lets an application do, shown on the consent "+
		"page: scope=description entries separated by semicolons, e.g. 'everything:admin=read the server environment' "+
		"(mcp and offline_access have built-in descriptions)")
	fs.StringVar(&s.groups, "groups", "", "comma-separated groups the MCP servers' policies use: a user's GitHub organizations (acme) and teams "+
		"(acme/platform), and the values of an OpenID provider's groups claim, read at login, become the access token's groups claim, "+
		"limited to these (empty: tokens carry no groups)")
	fs.StringVar(&s.ghClientID, "github-client-id", "", "GitHub OAuth app client id")
	fs.StringVar(&s.ghClientSecret, "github-client-secret", "", "GitHub OAuth app client secret")
	fs.StringVar(&s.ghWebURL, "github-web-url", "https://github.com/", "GitHub web URL (GitHub Enterprise Server: https://HOST/)")
	fs.StringVar(&s.ghAPIURL, "github-api-url", "https://api.github.com/", "GitHub REST API URL (GitHub Enterprise Server: https://HOST/api/v3/)")
	fs.StringVar(&s.allowedUsers, "allowed-github-users", "", "comma-separated GitHub logins allowed in (case-insensitive), or * for anyone")
	fs.StringVar(&s.allowedOrgs, "allowed-github-orgs", "", "comma-separated GitHub organizations whose members are allowed in")
	fs.StringVar(&s.allowedTeams, "allowed-github-teams", "", "comma-separated org/team slugs whose members are allowed in")
	fs.DurationVar(&s.codeTTL, "code-lifetime", 60*time.Second, "authorization code lifetime")
	fs.DurationVar(&s.accessTTL, "access-token-lifetime", time.Hour, "access token lifetime")
	fs.DurationVar(&s.refreshTTL, "refresh-token-lifetime", 30*24*time.Hour, "refresh token lifetime (each refresh starts it again, up to --grant-max-age)")
	fs.DurationVar(&s.grantMaxAge, "grant-max-age", 30*24*time.Hour,
		"a grant (the refresh tokens rotated from one login) ends this long after the login, however often it refreshes; the user then logs in again, "+
			"which checks organization and team membership anew")
	fs.IntVar(&s.refreshLimit, "refresh-limit", 30,
		"refreshes one grant may make per access-token lifetime (0: unlimited); it bounds the access tokens a grant holds at once, "+
			"and so what revoking it adds to the revocation feed")
	fs.DurationVar(&s.refreshReuseWindow, "refresh-reuse-window", 60*time.Second,
		"a refresh token presented again this soon after its rotation, before its successor is used, gets the same successor "+
			"(a retry, a second node or thread of one client) instead of revoking the grant as a replay (0: every repeat revokes)")
	fs.StringVar(&s.feedListen, "feed-listen", "",
		"serve the revocation feed (/revocations) on this separate, internal address for the gateway's plugins, and not on --listen "+
			"(empty: on --listen)")
	fs.DurationVar(&s.clientTTL, "client-lifetime", 90*24*time.Hour,
		"a registered client expires after this long without obtaining a token; each use starts it again (0: a used client never expires)")
	fs.DurationVar(&s.clientUnusedTTL, "client-unused-lifetime", 24*time.Hour,
		"a registered client that has not obtained any token expires this long after registering (0: --client-lifetime applies from registration)")
	fs.DurationVar(&s.authTTL, "login-timeout", 10*time.Minute, "time a user has to log in and consent")
	fs.DurationVar(&s.consentTTL, "consent-lifetime", 30*24*time.Hour, "how long an approval may be remembered (0: ask every time)")
	fs.DurationVar(&s.deviceTTL, "device-code-lifetime", 10*time.Minute, "device flow (RFC 8628): time a user has to enter the code and approve")
	fs.DurationVar(&s.devicePoll, "device-poll-interval", 5*time.Second, "device flow: least time between a device's polls of /token")
	fs.Float64Var(&s.deviceAttempts, "device-attempts-rate", 20, "device flow: user codes one IP address may try per minute")
	fs.BoolVar(&s.cimd, "cimd", true, "accept Client ID Metadata Documents: https URL client ids whose JSON document describes the client")
	fs.StringVar(&s.cimdAllowed, "cimd-allowed-hosts", "", "comma-separated hosts (example.com, *.example.com) whose client documents are accepted (empty: any public host)")
	fs.StringVar(&s.cimdDenied, "cimd-denied-hosts", "", "comma-separated hosts whose client documents are refused")
	fs.DurationVar(&s.cimdTimeout, "cimd-timeout", 5*time.Second, "time limit of fetching a client document")
	fs.DurationVar(&s.cimdCacheMin, "cimd-cache-min", time.Minute, "a client document is cached at least this long, whatever its headers say")
	fs.DurationVar(&s.cimdCacheMax, "cimd-cache-max", 24*time.Hour, "and at most this long")
	fs.StringVar(&s.cimdCAFile, "cimd-ca-file", "", "PEM file of extra CAs trusted for client documents (e.g. a private CA)")
	fs.BoolVar(&s.cimdAllowPrivate, "cimd-allow-private-addresses", false,
		"UNSAFE, development only: fetch client documents from loopback and private addresses (reopens server-side request forgery)")
	fs.Float64Var(&s.registerPerMinute, "register-rate", 10, "client registrations per minute per IP address (0: unlimited)")
	fs.IntVar(&s.registerBurst, "register-burst", 20, "registrations an IP address may make at once")
	fs.Float64Var(&s.authorizePerMinute, "authorize-rate", 30,
		"authorization requests (/authorize, and /device_authorization apart) per minute per IP address (IPv6: per /64); 0: unlimited")
	fs.Float64Var(&s.clientFetchPerMinute, "client-fetch-rate", 30,
		"client metadata documents and key sets (jwks_uri) that requests to /token, /revoke, /introspect and /device_authorization "+
			"may make this server fetch before the client is authenticated, per minute per IP address (IPv6: per /64); look-ups "+
			"answered from the cache are free; 0: unlimited")
	fs.IntVar(&s.maxPendingPerClient, "max-pending-per-client", 1000,
		"authorization requests and device grants one client may have in flight at once (0: no cap)")
	fs.StringVar(&s.trustedProxies, "trusted-proxies", "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
		"comma-separated CIDRs whose X-Forwarded-For is believed (the reverse proxy in front)")
	fs.StringVar(&s.logFormat, "log-format", "auto", "log format: text, json, or auto (json unless stderr is a terminal)")
	fs.StringVar(&s.auditLog, "audit-log", audit.Stdout, "where the audit trail goes, one JSON object a line: stdout, off, a file's path "+
		"(appended to, created 0600), or otlp (log records to the collector OTEL_EXPORTER_OTLP_ENDPOINT names); an operator command run in its own process writes stdout's to stderr, beside its output")
	fs.StringVar(&s.metricsListen, "metrics-listen", "", "address of a separate listener serving Prometheus metrics at /metrics, e.g. :9090 (empty: off)")
	fs.StringVar(&s.store.RedisURL, "redis-url", "", "Redis URL (redis://, rediss:// for TLS, ?master_name= for Sentinel); empty: the embedded store")
	fs.StringVar(&s.redisAddrs, "redis-addrs", "", "comma-separated Redis Cluster nodes or Sentinels, instead of --redis-url")
	fs.StringVar(&s.store.RedisMasterName, "redis-master-name", "", "Sentinel master name (with --redis-addrs)")
	fs.StringVar(&s.store.RedisUsername, "redis-username", "", "Redis ACL user")
	fs.StringVar(&s.store.RedisPassword, "redis-password", "", "Redis password (if not in the URL)")
	fs.BoolVar(&s.store.RedisTLS, "redis-tls", false, "use TLS with --redis-addrs")
	fs.StringVar(&s.store.RedisCAFile, "redis-ca-file", "", "PEM file of the CA that signed Redis' certificate")
	fs.BoolVar(&s.store.RedisCluster, "redis-cluster", false, "the Redis nodes form a Cluster")
	fs.StringVar(&s.store.RedisPrefix, "redis-prefix", "mcpgw:", "prefix of every Redis key")
	fs.StringVar(&s.store.DataFile, "data-file", "data/authserver.jsonl", "the embedded store's file (used without Redis)")
	fs.StringVar(&s.oidcProviders, oidcProvidersFlag, "", "comma-separated names of OpenID Connect providers users may log in with "+
		"(e.g. google,okta), each set by its own flags: --oidc-<name>-issuer, -client-id, -client-secret, -display-name, -scopes, "+
		"-userinfo, -username-claim, -groups-claim, -allowed-subjects, -allowed-emails, -allowed-email-domains, -allowed-groups "+
		"(environment AUTHSERVER_OIDC_<NAME>_ISSUER, ...); see docs/idp.md")
	fs.StringVar(&s.upstreams, upstreamsFlag, "", "comma-separated names of OAuth providers users may connect accounts at, so their MCP "+
		"servers act as them there (e.g. gitlab,linear), each set by its own flags: --upstream-<name>-issuer (or -auth-url and -token-url), "+
		"-revoke-url, -client-id, -client-secret, -scopes, -display-name; github or an --oidc-providers name without these flags is that login's "+
		"own app, whose logins keep their token; see docs/connections.md")
	fs.StringVar(&s.connectionsKey, "connections-key", "", "the keys connected accounts' tokens are encrypted with: <id>:<base64 of 32 random bytes>, "+
		"comma-separated; the first encrypts, all decrypt (rotation: put the new key first, keep the old one until the start has "+
		"re-encrypted every record)")
	fs.StringVar(&s.connectionsKeyFile, "connections-key-file", "", "a file holding --connections-key (one key a line)")
	fs.StringVar(&s.brokerSecret, "broker-secret", "", "the secret streamproxy presents at POST /connections/token on --feed-listen "+
		"to get a user's upstream token (empty: that endpoint is off)")
	fs.StringVar(&s.tokenExchange, "token-exchange", "", "RFC 8693 token exchange at /token: which clients may exchange a user's access "+
		"token for a token of another audience, as '<audience URL>=<client id> <client id>...' entries separated by ';' (* for any "+
		"authenticated client); empty: off")
	fs.StringVar(&s.adminSocket, "admin-socket", "", "embedded store: the Unix socket (owner only) on which the server runs the operator "+
		"commands while it holds the store's file (default <data-file>.sock)")
	return fs
}

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var s settings
	fs := flags(&s)
	names, err := oidcProviderNames(args) // the providers' flags are named after them
	if err != nil {
		return err
	}
	addOIDCFlags(fs, &s, names)
	upstreams, err := upstreamNames(args)
	if err != nil {
		return err
	}
	addUpstreamFlags(fs, &s, upstreams)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(fs, stderr) }
	if _, ok := admin.Commands[cmd]; ok {
		// Operator commands take their own arguments; the store settings come from the environment.
		if err := flagenv.Apply(fs, "AUTHSERVER", aliases); err != nil {
			return err
		}
		log, err := observe.NewLogger("text", stderr)
		if err != nil {
			return err
		}
		trail, err := commandAudit(s.auditLog, stderr, log)
		if err != nil {
			return err
		}
		defer trail.Close()
		return admin.Run(context.Background(), append([]string{cmd}, args...), func(ctx context.Context) (admin.Runner, func() error, error) {
			return admin.Connect(ctx, adminTarget(&s, trail, log))
		}, stdout, stderr)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := flagenv.Apply(fs, "AUTHSERVER", aliases); err != nil {
		return err
	}
	if cmd == "serve" {
		// The access log is written in batches, as streamproxy's: a line written on its own per request is a system
		// call, and a wake-up of the log's reader, per request. Flushed last, after serve has logged its shutdown.
		out := observe.NewBatchWriter(stderr, observe.LogDelay)
		defer out.Flush()
		log, err := observe.NewLogger(s.logFormat, out)
		if err != nil {
			return err
		}
		return serve(&s, log)
	}
	usage(fs, stderr)
	return fmt.Errorf("unknown command %q", cmd)
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintln(w, "usage: authserver [serve] [flags]\n       authserver <operator command> [args]\n\nOperator commands:")
	names := make([]string, 0, len(admin.Commands))
	for n := range admin.Commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %s\n", admin.Commands[n])
	}
	fmt.Fprintln(w, "\nEvery flag also reads AUTHSERVER_<FLAG> (upper case, - as _). Flags:")
	fs.PrintDefaults()
}

func openStore(ctx context.Context, s *settings, log *slog.Logger) (store.Store, error) {
	s.store.RedisAddrs = flagenv.Split(s.redisAddrs)
	s.store.Logger = log
	c := s.store
	c.Server = true
	return backend.Open(ctx, c)
}

func keyManager(st store.Store, s *settings) *keys.Manager {
	return &keys.Manager{Store: st, MaxTokenLifetime: s.accessTTL}
}

func serve(s *settings, log *slog.Logger) error {
	if s.issuer == "" {
		return errors.New("--issuer is required: the public URL of this server, e.g. https://auth.example.com")
	}
	if s.grantMaxAge <= 0 {
		return errors.New("--grant-max-age must be positive: every grant ends, so that a login's checks are made again")
	}
	if s.refreshLimit < 0 {
		return errors.New("--refresh-limit must be 0 (unlimited) or more")
	}
	scopes := flagenv.Split(s.scopes)
	if err := oauth.CheckScopes(scopes); err != nil {
		return fmt.Errorf("--scopes: %w", err)
	}
	described, err := oauth.ParseScopeDescriptions(s.scopeDescriptions, scopes)
	if err != nil {
		return fmt.Errorf("--scope-descriptions: %w", err)
	}
	groups, err := login.ParseGroups(s.groups)
	if err != nil {
		return fmt.Errorf("--groups: %w", err)
	}
	ghConfig, policy, err := checkGitHub(s, log)
	if err != nil {
		return err
	}
	// One guarded fetcher for client documents (CIMD) and client key sets (private_key_jwt jwks_uri).
	fetcher, err := clientDocuments(s, log)
	if err != nil {
		return err
	}
	var documents *clientmeta.Fetcher
	if s.cimd {
		documents = fetcher
	}
	if s.cimdAllowPrivate {
		log.Warn("client documents and keys may come from private and loopback addresses (--cimd-allow-private-addresses): development only")
	}
	var proxies []netip.Prefix
	for _, p := range flagenv.Split(s.trustedProxies) {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return fmt.Errorf("--trusted-proxies: %w", err)
		}
		proxies = append(proxies, pfx)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	traces, err := tracing.Setup(ctx, "authserver", log)
	if err != nil {
		return err
	}
	defer traces.Close()
	openID, access, err := oidcProviders(ctx, s, log) // discovered before the store is opened
	if err != nil {
		return err
	}
	st, err := openStore(ctx, s, log)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := observe.NewRegistry()
	m := metrics.New(reg)
	trail, err := audit.Open(s.auditLog, audit.Options{Service: "authserver", Registerer: reg, Namespace: "authserver", Log: log})
	if err != nil {
		return fmt.Errorf("--audit-log: %w", err)
	}
	defer trail.Close() // after the handlers and the admin socket stopped: their last events are written
	conns, err := connectionsService(ctx, s, st, trail, log)
	if err != nil {
		return err
	}
	var providers []login.Provider
	if githubConfigured(s) {
		ghConfig.Pins = st // each allowed login keeps the account it was first seen with
		ghConfig.Groups = groups
		keepGitHubLogins(conns, &ghConfig)
		gh, err := github.New(ghConfig, policy, &http.Client{Timeout: 15 * time.Second})
		if err != nil {
			return err
		}
		providers = append(providers, gh.LoginProvider())
		access = append([]string{"github: " + policy.String()}, access...)
	}
	keepOpenIDLogins(conns, openID)
	logins, err := login.New(st, append(providers, openID...)...)
	if err != nil {
		return err
	}
	logins.KeepGroups(groups)
	km := keyManager(st, s)
	if err := km.Ensure(ctx); err != nil {
		return err
	}
	adminDone, err := serveAdminSocket(ctx, s, st, km, conns, m, trail, log)
	if err != nil {
		return err
	}
	defer adminDone() // before the store closes
	resources, patterns := flagenv.Split(s.resources), flagenv.Split(s.resourcePatterns)
	if len(resources) == 0 && len(patterns) == 0 {
		// The path-based layout on the issuer's own origin: every /<service>/mcp there.
		u, err := url.Parse(s.issuer)
		if err != nil {
			return fmt.Errorf("--issuer: %w", err)
		}
		origin := strings.ToLower(u.Scheme + "://" + u.Host)
		resources, patterns = []string{origin + "/mcp"}, []string{origin + "/*/mcp"}
		log.Info("no resources configured: protecting the MCP endpoints on the issuer's origin", "resources", resources, "patterns", patterns)
	}
	served := st // what the endpoints use: with tracing on, each of its calls is a span
	if traces.Enabled() {
		system := "embedded"
		if s.store.UsesRedis() {
			system = "redis"
		}
		served = storetrace.Wrap(st, system)
	}
	exchange, err := oauth.ParseExchangePolicy(s.tokenExchange)
	if err != nil {
		return fmt.Errorf("--token-exchange: %w", err)
	}
	srv, err := oauth.New(oauth.Config{
		ClientMetadata: documents, ClientKeys: fetcher,
		Issuer: s.issuer, Resources: resources, ResourcePatterns: patterns,
		DefaultResource: s.defaultResource, Scopes: scopes, ScopeDescriptions: described,
		Grants:  grant.Policy{MaxAge: s.grantMaxAge, RefreshLimit: s.refreshLimit, Window: s.accessTTL},
		CodeTTL: s.codeTTL, AccessTTL: s.accessTTL, RefreshTTL: s.refreshTTL, Clients: clientlife.Policy{Unused: s.clientUnusedTTL, Idle: s.clientTTL},
		AuthRequestTTL: s.authTTL, ConsentTTL: s.consentTTL, RefreshReuseWindow: s.refreshReuseWindow,
		RegisterPerMinute: s.registerPerMinute, RegisterBurst: s.registerBurst, TrustedProxies: proxies,
		AuthorizePerMinute: s.authorizePerMinute, MaxPendingPerClient: s.maxPendingPerClient, ClientFetchPerMinute: s.clientFetchPerMinute,
		FeedPollInterval: 5 * time.Second, SeparateFeed: s.feedListen != "", Metrics: m, Audit: trail,
		DeviceCodeTTL: s.deviceTTL, DevicePollInterval: s.devicePoll, DeviceAttemptsPerMinute: s.deviceAttempts,
		Connections: conns, Exchange: exchange,
	}, served, km, logins, log)
	if err != nil {
		return err
	}
	if s.metricsListen != "" {
		if _, err := observe.ServeMetrics(ctx, s.metricsListen, reg, log); err != nil {
			return err
		}
	}
	go purgeLoop(ctx, st, log)

	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if s.feedListen != "" {
		internal := srv.FeedHandler()
		if conns != nil && s.brokerSecret != "" {
			mux := http.NewServeMux()
			mux.Handle("POST /connections/token", conns.Broker(s.brokerSecret))
			mux.Handle("/", internal)
			internal = mux
		}
		if err := serveFeed(ctx, s.feedListen, internal, log); err != nil {
			return err
		}
	}
	hs := &http.Server{Handler: observe.Handler(traces.Handler(srv.Handler()), log, observe.NewMetrics(reg, "authserver")), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdown)
	}()
	log.Info("authserver listening", "addr", ln.Addr().String(), "issuer", s.issuer,
		"resources", slices.Concat(resources, patterns), "access", strings.Join(access, "; "), "groups", groups)
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveFeed serves the internal listener (the revocation feed, and the connections broker) until ctx ends.
func serveFeed(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--feed-listen: %w", err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("revocation feed listener stopped", "err", err)
		}
	}()
	log.Info("revocation feed listening", "addr", ln.Addr().String())
	return nil
}

// clientDocuments builds the fetcher of Client ID Metadata Documents from the flags.
func clientDocuments(s *settings, log *slog.Logger) (*clientmeta.Fetcher, error) {
	if s.cimdCacheMin <= 0 || s.cimdCacheMax < s.cimdCacheMin {
		return nil, fmt.Errorf("--cimd-cache-min (%s) must be positive and at most --cimd-cache-max (%s)", s.cimdCacheMin, s.cimdCacheMax)
	}
	cfg := clientmeta.Config{Timeout: s.cimdTimeout, MinCache: s.cimdCacheMin, MaxCache: s.cimdCacheMax, AllowedHosts: flagenv.Split(s.cimdAllowed), DeniedHosts: flagenv.Split(s.cimdDenied),
		AllowPrivateAddresses: s.cimdAllowPrivate, Log: log}
	if err := clientmeta.CheckHosts(cfg.AllowedHosts); err != nil {
		return nil, fmt.Errorf("--cimd-allowed-hosts: %w", err)
	}
	if err := clientmeta.CheckHosts(cfg.DeniedHosts); err != nil {
		return nil, fmt.Errorf("--cimd-denied-hosts: %w", err)
	}
	if s.cimdCAFile != "" {
		pem, err := os.ReadFile(s.cimdCAFile)
		if err != nil {
			return nil, fmt.Errorf("--cimd-ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cimd-ca-file %s holds no PEM certificate", s.cimdCAFile)
		}
		cfg.RootCAs = pool
	}
	return clientmeta.New(cfg), nil
}

// purgeLoop removes expired records the store does not expire by itself.
func purgeLoop(ctx context.Context, st store.Store, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := st.PurgeExpired(ctx); err != nil {
				log.Warn("purging expired records failed", "err", err)
			} else if n > 0 {
				log.Info("purged expired records", "count", n)
			}
		}
	}
}

// commandAudit is the audit trail of an operator command run in its own process: its stdout is the command's output,
// so the trail's "stdout" is stderr there.
func commandAudit(dest string, stderr io.Writer, log *slog.Logger) (*audit.Logger, error) {
	o := audit.Options{Service: "authserver", Log: log}
	if dest == audit.Stdout {
		return audit.New(stderr, nil, o), nil
	}
	trail, err := audit.Open(dest, o)
	if err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	return trail, nil
}
