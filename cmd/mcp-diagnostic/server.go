package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth-gateway/gateway/internal/flagenv"
)

// version is reported in serverInfo.
const version = "0.1.0"

// EchoInput is the argument of echo.
type EchoInput struct {
	Message string `json:"message" jsonschema:"the text to send back"`
}

// EchoOutput is what echo and replayLastEcho return.
type EchoOutput struct {
	Message string `json:"message" jsonschema:"the echoed text"`
}

// WhoamiOutput lists the identity the gateway passed to this backend. It never holds a token: only whether an
// Authorization header reached the backend at all (behind the gateway it must not).
type WhoamiOutput struct {
	UserID                string `json:"userId" jsonschema:"X-User-Id: the user's id (a GitHub numeric id, or provider:sub for an OpenID provider's user)"`
	UserName              string `json:"userName" jsonschema:"X-User-Name: the user's name at their identity provider (GitHub login, preferred_username, ...)"`
	UserEmail             string `json:"userEmail" jsonschema:"X-User-Email, when known"`
	ClientID              string `json:"clientId" jsonschema:"X-Client-Id: the OAuth client"`
	Scopes                string `json:"scopes" jsonschema:"X-Scopes: the token's scopes"`
	UserGroups            string `json:"userGroups" jsonschema:"X-User-Groups: the user's declared groups, comma separated, when any"`
	ResourceMetadata      string `json:"resourceMetadata" jsonschema:"X-Resource-Metadata: this server's protected-resource metadata URL"`
	AuthorizationReceived bool   `json:"authorizationReceived" jsonschema:"whether an Authorization header reached this backend"`
	SessionID             string `json:"sessionId" jsonschema:"the MCP session id"`
}

// lastEchoes keeps the last echoed message per MCP session, so replayLastEcho shows that requests of one session reach
// the same state (and those of another session do not).
type lastEchoes struct {
	mu   sync.Mutex
	byID map[string]string
}

func (l *lastEchoes) set(ss *mcp.ServerSession, msg string) {
	id := ss.ID()
	l.mu.Lock()
	_, known := l.byID[id]
	l.byID[id] = msg
	l.mu.Unlock()
	if !known {
		// Forget the session's state when it ends (DELETE, idle timeout or shutdown).
		go func() {
			_ = ss.Wait()
			l.mu.Lock()
			delete(l.byID, id)
			l.mu.Unlock()
		}()
	}
}

func (l *lastEchoes) get(id string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg, ok := l.byID[id]
	return msg, ok
}

// newServer builds the MCP server with its three tools.
func newServer(logger *slog.Logger) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcp-diagnostic", Title: "MCP gateway diagnostic", Version: version},
		&mcp.ServerOptions{
			Instructions: "Diagnostic server of the MCP OAuth gateway: call whoami to see who the gateway says you are.",
			Logger:       logger,
		})
	echoes := &lastEchoes{byID: map[string]string{}}

	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Return the message unchanged; replayLastEcho returns it again later in this session."},
		func(_ context.Context, req *mcp.CallToolRequest, in EchoInput) (*mcp.CallToolResult, EchoOutput, error) {
			echoes.set(req.Session, in.Message)
			return text(in.Message), EchoOutput(in), nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "replayLastEcho", Description: "Return the last message echoed in this session (state is per session)."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, EchoOutput, error) {
			msg, ok := echoes.get(req.Session.ID())
			if !ok {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{
					&mcp.TextContent{Text: "nothing echoed in this session yet: call echo first"}}}, EchoOutput{}, nil
			}
			return text(msg), EchoOutput{Message: msg}, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "whoami", Description: "Show the identity headers the gateway passed to this server (never a token)."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, WhoamiOutput, error) {
			var h http.Header
			if req.Extra != nil {
				h = req.Extra.Header
			}
			out := WhoamiOutput{
				UserID:                h.Get("X-User-Id"),
				UserName:              h.Get("X-User-Name"),
				UserEmail:             h.Get("X-User-Email"),
				ClientID:              h.Get("X-Client-Id"),
				Scopes:                h.Get("X-Scopes"),
				UserGroups:            h.Get("X-User-Groups"),
				ResourceMetadata:      h.Get("X-Resource-Metadata"),
				AuthorizationReceived: h.Get("Authorization") != "",
				SessionID:             req.Session.ID(),
			}
			return text(out.String()), out, nil
		})
	return s
}

// String is the human-readable form shown to a user in a chat client.
func (w WhoamiOutput) String() string {
	if w.UserID == "" {
		return "No identity headers arrived: this server is not behind the gateway's mcp-oauth middleware."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "user id: %s\nuser name: %s\n", w.UserID, w.UserName)
	if w.UserEmail != "" {
		fmt.Fprintf(&b, "email: %s\n", w.UserEmail)
	}
	if w.UserGroups != "" {
		fmt.Fprintf(&b, "groups: %s\n", w.UserGroups)
	}
	fmt.Fprintf(&b, "client id: %s\nscopes: %s\nAuthorization header received: %t\n", w.ClientID, w.Scopes, w.AuthorizationReceived)
	return b.String()
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// newHandler serves the MCP endpoint at opts.path and liveness at /health.
func newHandler(opts options, logger *slog.Logger) (http.Handler, error) {
	server := newServer(logger)
	hosts := flagenv.Split(opts.allowedHosts)
	mcpHandler := http.Handler(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{
			SessionTimeout: opts.sessionIdle,
			Logger:         logger,
			// With an explicit host list our own check replaces the SDK's loopback-only one, which would refuse the
			// names a reverse proxy on the same machine forwards (e.g. diagnostic.localhost).
			DisableLocalhostProtection: len(hosts) > 0,
		}))
	if len(hosts) > 0 {
		mcpHandler = hostCheck(hosts, mcpHandler)
	}
	mux := http.NewServeMux()
	mux.Handle(opts.path, mcpHandler)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	return mux, nil
}

// hostCheck refuses requests whose Host (port ignored) is not in the list; "*" allows any host.
func hostCheck(hosts []string, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, h := range hosts {
		allowed[strings.ToLower(h)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !allowed["*"] && !allowed[strings.ToLower(host)] {
			http.Error(w, fmt.Sprintf("Forbidden: Host %q is not in --allowed-hosts", r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
