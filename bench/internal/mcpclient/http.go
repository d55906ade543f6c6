package mcpclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// HTTPClient opens Streamable HTTP sessions on one MCP endpoint.
type HTTPClient struct {
	URL    string
	HTTP   *http.Client
	Header http.Header // sent with every request (e.g. Authorization)
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
	c       *HTTPClient
	id      string // Mcp-Session-Id, empty for stateless servers
	version string // negotiated protocol version
	init    time.Duration
	next    atomic.Int64
}

// Open initializes a session: initialize, then notifications/initialized.
func (c *HTTPClient) Open(ctx context.Context) (Session, error) {
	s := &httpSession{c: c}
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

func (s *httpSession) newRequest(ctx context.Context, method string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range s.c.Header {
		req.Header[k] = v
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
	body, err := json.Marshal(request{JSONRPC: "2.0", ID: &id, Method: method, Params: params})
	if err != nil {
		return nil, err
	}
	req, err := s.newRequest(ctx, http.MethodPost, body)
	if err != nil {
		return nil, err
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

// Close deletes the session on the server (servers that do not support DELETE answer 405, which is fine).
func (s *httpSession) Close() error {
	if s.id == "" {
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
