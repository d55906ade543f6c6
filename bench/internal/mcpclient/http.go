package mcpclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// HTTPClient opens Streamable HTTP sessions on one MCP endpoint.
type HTTPClient struct {
	URL    string
	HTTP   *http.Client
	Header http.Header // sent with every request (e.g. Authorization)

	// Stateless speaks protocol version 2026-07-28 (StatelessProtocolVersion) instead of ProtocolVersion: there is no
	// initialize and no Mcp-Session-Id. Open sends server/discover (timed as the session's start); every request
	// carries the version and the client's capabilities in params._meta and mirrors them in the MCP-Protocol-Version,
	// Mcp-Method and Mcp-Name headers; Close sends nothing (there is no session to end).
	Stateless bool
	// UserHeader, when set, names a header (e.g. X-User-Id) that each Open sets to a value of its own
	// ("bench-user-1", "bench-user-2", ...), so that every session is a distinct user. A 2026-07-28 server that keeps
	// state per user (streamproxy: one worker child per user) then serves N sessions as N users.
	UserHeader string

	users atomic.Int64
}

// NewHTTPTransport returns a transport that keeps enough idle connections for many concurrent sessions, so the
// measurement is not of connection setup.
func NewHTTPTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	t.DisableCompression = true
	return t
}

type httpSession struct {
	c         *HTTPClient
	id        string // Mcp-Session-Id, empty for stateless servers and for 2026-07-28
	user      string // value of c.UserHeader, when set
	version   string // negotiated protocol version
	stateless bool
	init      time.Duration
	next      atomic.Int64
}

// Open initializes a session: initialize, then notifications/initialized; for a Stateless client, server/discover.
func (c *HTTPClient) Open(ctx context.Context) (Session, error) {
	user := ""
	if c.UserHeader != "" {
		user = "bench-user-" + strconv.FormatInt(c.users.Add(1), 10)
	}
	return c.OpenAs(ctx, user)
}

// OpenAs is Open as a given user (the value of UserHeader): a user who opens again after a refusal stays the
// same user.
func (c *HTTPClient) OpenAs(ctx context.Context, user string) (Session, error) {
	s := &httpSession{c: c, user: user}
	if c.Stateless {
		return s.discover(ctx)
	}
	t0 := time.Now()
	raw, err := s.Call(ctx, "initialize", initializeParams())
	s.init = time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	var res struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("initialize: decode result: %w", err)
	}
	s.version = res.ProtocolVersion
	if err := s.notify(ctx, "notifications/initialized"); err != nil {
		return nil, fmt.Errorf("notifications/initialized: %w", err)
	}
	return s, nil
}

// discover opens a 2026-07-28 "session": server/discover, whose result must list StatelessProtocolVersion. Nothing else
// is kept by the server between requests but what it keeps per user.
func (s *httpSession) discover(ctx context.Context) (Session, error) {
	s.stateless = true
	s.version = StatelessProtocolVersion
	t0 := time.Now()
	err := discover(ctx, s)
	s.init = time.Since(t0)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// discover sends server/discover on s and checks that its result lists StatelessProtocolVersion.
func discover(ctx context.Context, s Session) error {
	raw, err := s.Call(ctx, "server/discover", map[string]any{"_meta": json.RawMessage(discoverMeta)})
	if err == nil {
		err = checkDiscover(raw)
	}
	if err != nil {
		return fmt.Errorf("server/discover: %w", err)
	}
	return nil
}

// checkDiscover checks that a DiscoverResult lists StatelessProtocolVersion.
func checkDiscover(raw json.RawMessage) error {
	var res struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	if !slices.Contains(res.SupportedVersions, StatelessProtocolVersion) {
		return fmt.Errorf("the server does not support %s (it lists %v)", StatelessProtocolVersion, res.SupportedVersions)
	}
	return nil
}

func (s *httpSession) newRequest(ctx context.Context, method string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range s.c.Header {
		req.Header[k] = v
	}
	if s.user != "" {
		req.Header.Set(s.c.UserHeader, s.user)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.id != "" {
		req.Header.Set("Mcp-Session-Id", s.id)
	}
	if s.version != "" {
		req.Header.Set("Mcp-Protocol-Version", s.version)
	}
	return req, nil
}

func (s *httpSession) notify(ctx context.Context, method string) error {
	body, err := json.Marshal(request{JSONRPC: "2.0", Method: method})
	if err != nil {
		return err
	}
	req, err := s.newRequest(ctx, http.MethodPost, body)
	if err != nil {
		return err
	}
	resp, err := s.c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return statusError(resp)
	}
	return nil
}

// Call posts one request and reads its answer from a JSON body or from the SSE stream, skipping whatever else the
// server sends on that stream first (progress, log messages).
func (s *httpSession) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id := s.next.Add(1)
	name := ""
	if s.stateless {
		params, name = withStatelessMeta(params)
	}
	body, err := json.Marshal(request{JSONRPC: "2.0", ID: &id, Method: method, Params: params})
	if err != nil {
		return nil, err
	}
	req, err := s.newRequest(ctx, http.MethodPost, body)
	if err != nil {
		return nil, err
	}
	if s.stateless {
		req.Header.Set("Mcp-Method", method)
		if _, named := namedMethods[method]; named && name != "" {
			req.Header.Set("Mcp-Name", headerValue(name))
		}
	}
	resp, err := s.c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && s.id == "" {
		s.id = sid
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var m *message
	switch ct {
	case "application/json":
		m = &message{}
		if err := json.NewDecoder(resp.Body).Decode(m); err != nil {
			return nil, fmt.Errorf("decode JSON answer: %w", err)
		}
		if !m.isResponseTo(id) {
			return nil, fmt.Errorf("JSON answer is not the response to request %d", id)
		}
	case "text/event-stream":
		if m, err = readSSE(resp.Body, id); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unexpected Content-Type %q", resp.Header.Get("Content-Type"))
	}
	if m.Error != nil {
		return nil, m.Error
	}
	return m.Result, nil
}

// readSSE reads events until the response to id arrives.
func readSSE(r io.Reader, id int64) (*message, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() == 0 {
				continue
			}
			m := &message{}
			if err := json.Unmarshal([]byte(data.String()), m); err != nil {
				return nil, fmt.Errorf("decode SSE event: %w", err)
			}
			data.Reset()
			if m.isResponseTo(id) {
				return m, nil
			}
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read SSE stream: %w", err)
	}
	return nil, errors.New("SSE stream ended before the response")
}

// Close deletes the session on the server (servers that do not support DELETE answer 405, which is fine). A
// 2026-07-28 client has no session to end: the server decides how long it keeps what it holds for the user.
func (s *httpSession) Close() error {
	if s.id == "" || s.stateless {
		return nil
	}
	req, err := s.newRequest(context.Background(), http.MethodDelete, nil)
	if err != nil {
		return err
	}
	resp, err := s.c.HTTP.Do(req)
	if err != nil {
		return err
	}
	drain(resp.Body)
	return nil
}

func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
}

// drain reads what is left so the connection can be reused.
func drain(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, 1<<20))
	_ = b.Close()
}

// Request metadata of protocol version 2026-07-28, sent in params._meta of every request.
const (
	metaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	metaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	metaClientInfo         = "io.modelcontextprotocol/clientInfo"
)

// requestMeta is the _meta of every 2026-07-28 request, encoded once; discoverMeta adds the optional clientInfo.
var (
	requestMeta  = mustJSON(map[string]any{metaProtocolVersion: StatelessProtocolVersion, metaClientCapabilities: map[string]any{}})
	discoverMeta = mustJSON(map[string]any{metaProtocolVersion: StatelessProtocolVersion, metaClientCapabilities: map[string]any{},
		metaClientInfo: map[string]any{"name": "gateway-bench", "version": "1"}})
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// namedMethods are the methods whose Mcp-Name header mirrors a param: params.name, or params.uri for resources/read.
var namedMethods = map[string]string{"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

// withStatelessMeta returns params with the 2026-07-28 request metadata in _meta (a _meta the caller set is kept, the
// metadata added to it), and the request's name or uri for the Mcp-Name header. A map is copied shallowly, anything
// else goes through JSON.
func withStatelessMeta(params any) (any, string) {
	var p map[string]any
	switch v := params.(type) {
	case nil:
		p = map[string]any{}
	case map[string]any:
		p = make(map[string]any, len(v)+1)
		for k, x := range v {
			p[k] = x
		}
	default:
		b, err := json.Marshal(v)
		if err != nil || json.Unmarshal(b, &p) != nil || p == nil {
			return params, "" // Call's own json.Marshal reports it
		}
	}
	switch m := p["_meta"].(type) {
	case nil:
		p["_meta"] = json.RawMessage(requestMeta)
	case json.RawMessage:
		// Already complete (discover): sent as it is.
	case map[string]any:
		merged := make(map[string]any, len(m)+2)
		for k, x := range m {
			merged[k] = x
		}
		merged[metaProtocolVersion] = StatelessProtocolVersion
		if _, ok := merged[metaClientCapabilities]; !ok {
			merged[metaClientCapabilities] = map[string]any{}
		}
		p["_meta"] = merged
	}
	name, _ := p["name"].(string)
	if uri, ok := p["uri"].(string); ok && name == "" {
		name = uri
	}
	return p, name
}

// headerValue encodes a value for an Mcp-Name header: as it is when it is visible ASCII, else in the
// "=?base64?...?=" form 2026-07-28 defines.
func headerValue(v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || (i == 0 || i == len(v)-1) && c == ' ' {
			return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
		}
	}
	return v
}
