// Package transport serves the MCP Streamable HTTP transport on one endpoint for both generations of the protocol,
// each on a path of its own:
//
//   - the session path (session_path.go) serves the session revisions (2024-11-05 to 2025-11-25): a client opens a
//     session with initialize and names it in Mcp-Session-Id; each session gets its own stdio MCP server (package
//     session);
//   - the stateless path (stateless_*.go) serves the stateless revision (2026-07-28): no session, every request
//     carries its version and the client's capabilities; each user's requests go to that user's worker, one child
//     per user, which the proxy bridges to when the child speaks only the session revisions.
//
// handler.go takes every request and sends it down one path; what both share is in envelope.go (reading a
// message), processes.go and limits.go (what a user may hold), roots.go (--hide-client-roots) and authorize.go (the
// policy: who may use which tool, prompt and resource).
package transport

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/broker"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/metrics"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/policy"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/pool"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/starts"
)

// Config says what to run and how to bound it.
type Config struct {
	// Command is the MCP server; its Env and Dir may name the caller with peruser.Placeholder.
	Command        session.Command
	UserHeader     string        // identity header set by the gateway's plugin, e.g. X-User-Id; "" serves without identities
	AllowedOrigins []string      // browser origins allowed; "*" allows any; loopback origins are always allowed
	MaxSessions    int           // processes in all, sessions and workers; beyond it: 503 with Retry-After
	MaxPerUser     int           // processes of one user; beyond it: 429 with Retry-After
	Pool           int           // processes started ahead for new sessions and workers (package pool); 0: none
	MaxStarting    int           // processes starting at once (package starts); 0: no bound
	StartWait      time.Duration // longest a request waits for its turn to start a process, then 503; 0: as long as its client waits
	UserStreams    int           // streams one user may hold open (limits.go); 0: no limit
	UserCalls      int           // requests of one user in flight at once; 0: no limit
	HideRoots      bool          // roots never reach a server, by any path (roots.go)
	Share          int           // processes every caller shares, on both paths (shared.go); 0: one per session and user
	ShareMaxCalls  int           // calls in flight at one shared process; beyond it a call waits (ShareMaxWait); 0: no limit
	ShareMaxWait   time.Duration // longest a call waits for a shared process below ShareMaxCalls; then 503 with Retry-After
	IdleTimeout    time.Duration // a session without activity this long ends; 0 keeps it
	RequestTimeout time.Duration // 0: a request may run as long as the tool does
	KeepAlive      time.Duration // SSE comment interval on idle streams
	Backlog        int           // standalone-stream events kept for Last-Event-ID resumption
	MaxBody        int64         // bytes of one POST body
	Logger         *slog.Logger
	Metrics        *metrics.Metrics // nil: not counted
	SharedMetrics  *metrics.Shared  // what shared processes could not tie to one caller; nil: not counted
	Policy         *policy.Source   // who may use which tool, prompt and resource (authorize.go); nil: everyone, everything
	Identity       IdentityHeaders  // the caller's other identity headers, for the policy

	// The audit trail (operation.go): one event per operation that acts for a user; nil records nothing. Its
	// user_login and client_id come from Identity's headers.
	Audit          *audit.Logger
	ServerName     string   // the MCP server's name in the events
	AuditArguments []string // tools whose arguments the events carry, redacted ("*": every tool); none by default

	// Credentials fill the user's upstream tokens into each new process's environment (connect.go); nil: the
	// command names none.
	Credentials *broker.Injector
}

// Handler serves one MCP endpoint.
type Handler struct {
	cfg Config
	log *slog.Logger

	mu          sync.Mutex
	sessions    map[string]*session.Session
	workers     map[string]*worker   // by user, for the stateless path
	parked      map[string]*parked   // bridged calls waiting for input, by request state
	parkFor     time.Duration        // how long a parked call waits (inputTimeout; tests shorten it)
	load        map[string]*userLoad // by user, while they hold streams or requests
	closing     bool
	pool        *pool.Pool      // nil: none
	starts      *starts.Limiter // turns to start a process (--max-starting)
	childSpeaks atomic.Int32    // what the MCP server command speaks: speaksUnknown until the first worker's probe
	shared      *sharedPool     // with Config.Share: the processes every caller shares, and their sessions
	trips       roundTrips      // servers' requests to their clients waiting for an answer, for the audit trail
}

// New returns a handler; Close ends its sessions.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, sessions: map[string]*session.Session{}, workers: map[string]*worker{},
		parked: map[string]*parked{}, parkFor: inputTimeout, load: map[string]*userLoad{}, starts: starts.New(cfg.MaxStarting, cfg.Metrics)}
	if cfg.Pool > 0 {
		h.pool = pool.New(pool.Config{Size: cfg.Pool, Start: h.startAhead, Room: h.poolRoom, Starts: h.starts,
			Log: cfg.Logger, Metrics: cfg.Metrics})
	}
	if cfg.Share > 0 {
		h.shared = h.startShared(cfg.Share)
	} else if cfg.IdleTimeout > 0 {
		go h.reapIdle()
	}
	return h
}

// Sessions reports how many sessions are open.
func (h *Handler) Sessions() int {
	if h.shared != nil {
		return h.shared.count()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Workers reports how many users have a worker, for the stateless path.
func (h *Handler) Workers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.workers)
}

// Close ends every session and worker and refuses new ones.
func (h *Handler) Close() {
	if h.shared != nil {
		h.shared.close()
	}
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	h.starts.Close() // what waits for its turn to start gives up
	h.pool.Close()
	h.mu.Lock()
	all := make([]*session.Session, 0, len(h.sessions)+len(h.workers))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	for _, wk := range h.workers {
		if wk.s != nil {
			all = append(all, wk.s)
		}
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		go func() { defer wg.Done(); h.remove(s) }()
	}
	wg.Wait()
}

// SecretHeader carries the secret shared between Traefik and streamproxy.
const SecretHeader = "X-Streamproxy-Secret"

// RequireSecret serves only requests that carry the secret in SecretHeader (none is required when it is empty). It
// comes first, before any routing between replicas: only the gateway may speak for a user, and whoever else reaches
// this port could name any user.
func RequireSecret(secret string, next http.Handler) http.Handler {
	if secret == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(SecretHeader)), []byte(secret)) != 1 {
			httpError(w, http.StatusForbidden, "request did not come through the gateway (%s missing or wrong)", SecretHeader)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cfg.UserHeader != "" && h.userOf(r) == "" {
		httpError(w, http.StatusForbidden, "no user identity (%s): requests reach this MCP server through the gateway, which sets it", h.cfg.UserHeader)
		return
	}
	if !h.originAllowed(r.Header.Get("Origin")) {
		// DNS-rebinding protection: a page on a foreign origin must not drive a local MCP server.
		httpError(w, http.StatusForbidden, "origin %q is not allowed", r.Header.Get("Origin"))
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.post(w, r)
	case http.MethodGet, http.MethodDelete:
		if r.Header.Get("Mcp-Session-Id") == "" {
			// The stateless path has neither a GET stream nor sessions to delete; session clients name theirs.
			w.Header().Set("Allow", "POST")
			httpError(w, http.StatusMethodNotAllowed, "%s without Mcp-Session-Id: protocol version 2026-07-28 uses POST only", r.Method)
			return
		}
		if v := r.Header.Get("MCP-Protocol-Version"); v != "" && !slices.Contains(sessionVersions, v) {
			httpError(w, http.StatusBadRequest, "unsupported MCP-Protocol-Version %q for a session (supported: %s)", v, strings.Join(sessionVersions, ", "))
			return
		}
		if r.Method == http.MethodGet {
			h.get(w, r)
		} else {
			h.delete(w, r)
		}
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		httpError(w, http.StatusMethodNotAllowed, "method %s is not part of the MCP transport", r.Method)
	}
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	if !accepts(r.Header.Get("Accept"), "application/json") || !accepts(r.Header.Get("Accept"), "text/event-stream") {
		httpError(w, http.StatusNotAcceptable, "Accept must allow both application/json and text/event-stream")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		httpError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			rpcError(w, http.StatusRequestEntityTooLarge, nil, -32600, fmt.Sprintf("message larger than %d bytes", h.cfg.MaxBody))
			return
		}
		rpcError(w, http.StatusBadRequest, nil, -32700, "could not read the request body")
		return
	}
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		rpcError(w, http.StatusBadRequest, nil, -32600, "JSON-RPC batches are not supported: send one message per POST")
		return
	}
	msg, err := decodeIncoming(body)
	if err != nil {
		// Refused here and answered at once: a child may drop such a message in silence.
		var e *envelopeError
		errors.As(err, &e)
		rpcError(w, http.StatusBadRequest, msg.ID, e.code, e.message)
		return
	}
	op, w, r := h.begin(w, r, msg, len(body))
	defer op.end(r.Context())
	// From here on, both paths read only msg: the proxy's own encoding of what it read.
	if msg.ID != nil && msg.Method != "" {
		release, err := h.admit(h.userOf(r), msg.Method == "subscriptions/listen")
		if err != nil {
			h.refuseLoad(w, msg.ID, err)
			return
		}
		defer release()
	}
	if isStateless(r, msg) {
		h.serveStateless(w, r, msg)
		return
	}
	h.postSession(w, r, msg)
}

func (h *Handler) userOf(r *http.Request) string {
	if h.cfg.UserHeader == "" {
		return ""
	}
	return r.Header.Get(h.cfg.UserHeader)
}

func (h *Handler) reapIdle() {
	t := time.NewTicker(min(h.cfg.IdleTimeout/2, 30*time.Second))
	defer t.Stop()
	for range t.C {
		h.mu.Lock()
		if h.closing {
			h.mu.Unlock()
			return
		}
		var idle []*session.Session
		for _, s := range h.sessions {
			if last, busy := s.IdleSince(); !busy && time.Since(last) > h.cfg.IdleTimeout {
				idle = append(idle, s)
			}
		}
		var idleWorkers []*worker
		for _, wk := range h.workers {
			if wk.s == nil {
				continue // still starting
			}
			if last, busy := wk.s.IdleSince(); !busy && time.Since(last) > h.cfg.IdleTimeout {
				idleWorkers = append(idleWorkers, wk)
			}
		}
		h.mu.Unlock()
		for _, s := range idle {
			h.log.Info("ending idle session", "session", s.ID[:8])
			h.cfg.Metrics.Expired()
			go h.remove(s)
		}
		for _, wk := range idleWorkers {
			h.log.Info("ending idle worker", "session", wk.s.ID[:8])
			h.cfg.Metrics.Expired()
			h.forgetWorker(wk)
			go wk.s.Close(childGrace)
		}
	}
}

func (h *Handler) originAllowed(origin string) bool {
	if origin == "" || slices.Contains(h.cfg.AllowedOrigins, "*") || slices.Contains(h.cfg.AllowedOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	switch u.Hostname() {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// accepts reports whether an Accept header allows the media type (a missing header or */* allows anything).
func accepts(header, want string) bool {
	if header == "" {
		return false
	}
	major, _, _ := strings.Cut(want, "/")
	for _, part := range strings.Split(header, ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		mt = strings.TrimSpace(mt)
		if mt == want || mt == "*/*" || mt == major+"/*" {
			return true
		}
	}
	return false
}

type sseWriter struct {
	w http.ResponseWriter
	f *http.ResponseController
}

func startSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx and friends must not hold events back
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, f: http.NewResponseController(w)}
	_ = s.f.Flush()
	return s
}

func (s *sseWriter) event(id string, data []byte) {
	var b bytes.Buffer
	if id != "" {
		b.WriteString("id: ")
		b.WriteString(id)
		b.WriteByte('\n')
	}
	b.WriteString("event: message\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	_, _ = s.w.Write(b.Bytes())
	_ = s.f.Flush()
}

func (s *sseWriter) comment(text string) {
	_, _ = io.WriteString(s.w, ": "+text+"\n\n")
	_ = s.f.Flush()
}

// answerJSON answers with one JSON body and sends it at once: with its length declared and the body flushed, the
// client has its answer before the proxy's own bookkeeping (the operation's span and audit event, the access log)
// runs, instead of the answer waiting in the server's buffer until the handler returns.
func answerJSON(w http.ResponseWriter, status int, raw []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(status)
	_, _ = w.Write(raw)
	_ = http.NewResponseController(w).Flush()
}

func httpError(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}

func rpcError(w http.ResponseWriter, status int, id json.RawMessage, code int, message string) {
	rpcErrorData(w, status, id, code, message, nil)
}

func rpcErrorData(w http.ResponseWriter, status int, id json.RawMessage, code int, message string, data any) {
	if id == nil {
		id = json.RawMessage("null")
	}
	e := map[string]any{"code": code, "message": message}
	if data != nil {
		e["data"] = data
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": id, "error": e})
}

// rpcErr is a JSON-RPC error object.
type rpcErr struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}
