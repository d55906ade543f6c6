// Package mcpclient is a minimal MCP client for measurements: initialize, notifications/initialized and tools/call
// over Streamable HTTP (answers as JSON or as an SSE stream) or over stdio, and over HTTP also protocol version
// 2026-07-28 (server/discover, then tools/call with request metadata and no session). It does only what a benchmark needs, with
// nothing between the wire and the clock, so every target is driven by the same code.
package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ProtocolVersion is the MCP revision the client asks for in initialize.
const ProtocolVersion = "2025-06-18"

// StatelessProtocolVersion is the revision a Stateless HTTP client speaks: no initialize, no session, request metadata in
// every request.
const StatelessProtocolVersion = "2026-07-28"

// Session is one initialized MCP session.
type Session interface {
	// Call sends a request and returns its result, or an error for a JSON-RPC error answer.
	Call(ctx context.Context, method string, params any) (json.RawMessage, error)
	// Close ends the session (DELETE for HTTP, closing stdin for stdio; nothing for a 2026-07-28 client, which has no
	// session).
	Close() error
}

// InitTime is how long the initialize request took to answer (for stdio, from starting the process; for a 2026-07-28
// client, server/discover).
func InitTime(s Session) time.Duration {
	switch v := s.(type) {
	case *httpSession:
		return v.init
	case *stdioSession:
		return v.init
	}
	return 0
}

// RPCError is a JSON-RPC error answer.
type RPCError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *RPCError) Error() string { return "json-rpc error " + strconv.Itoa(e.Code) + ": " + e.Message }

type request struct {
	JSONRPC string `json:"jsonrpc"`
	ID      *int64 `json:"id,omitempty"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
}

// message is any JSON-RPC message read from a server: a response (ID and Result or Error) or a request or
// notification from the server (Method set).
type message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *RPCError       `json:"error,omitempty"`
}

func (m *message) isResponseTo(id int64) bool {
	return m.Method == "" && len(m.ID) > 0 && string(m.ID) == strconv.FormatInt(id, 10)
}

func initializeParams() map[string]any {
	return map[string]any{
		"protocolVersion": ProtocolVersion,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "gateway-bench", "version": "1"},
	}
}

// CallTool calls a tool and returns the text of its content; a tool error or an empty answer is an error.
func CallTool(ctx context.Context, s Session, name string, args map[string]any) (string, error) {
	if args == nil {
		args = map[string]any{}
	}
	raw, err := s.Call(ctx, "tools/call", map[string]any{"name": name, "arguments": args})
	if err != nil {
		return "", err
	}
	var res struct {
		ResultType string `json:"resultType"` // 2026-07-28: "complete", or a request for input the bench cannot give
		IsError    bool   `json:"isError"`
		Content    []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return "", fmt.Errorf("%s: decode result: %w", name, err)
	}
	if res.ResultType != "" && res.ResultType != "complete" {
		return "", fmt.Errorf("%s: the result is %q, not complete: %s", name, res.ResultType, raw)
	}
	if res.IsError || len(res.Content) == 0 {
		return "", fmt.Errorf("%s: the tool answered an error or no content: %s", name, raw)
	}
	var b strings.Builder
	for _, c := range res.Content {
		b.WriteString(c.Text)
	}
	return b.String(), nil
}

// Echo calls the echo tool with msg and checks that the answer carries it back.
func Echo(ctx context.Context, s Session, msg string) error {
	text, err := CallTool(ctx, s, "echo", map[string]any{"message": msg})
	if err != nil {
		return err
	}
	if !strings.Contains(text, msg) {
		return errors.New("echo: the answer does not contain the message sent")
	}
	return nil
}
