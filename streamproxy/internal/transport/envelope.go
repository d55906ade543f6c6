package transport

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/jsonobj"
)

// A client's message is read once, strictly, and written anew by the proxy: every check after that, and the child,
// read the proxy's own encoding. A child whose parser reads a message differently from Go's (the first of two
// duplicate names, say, or a member Go matched without regard to case) therefore never acts on a value the proxy
// did not check, and a message the child would drop in silence is refused at once instead of leaving its client
// waiting.

// envelopeError is a message the proxy refuses before it reaches any child, with its JSON-RPC code.
type envelopeError struct {
	code    int
	message string
}

func (e *envelopeError) Error() string { return e.message }

func invalidRequest(format string, args ...any) error {
	return &envelopeError{code: -32600, message: "invalid request: " + fmt.Sprintf(format, args...)}
}

var errParse = &envelopeError{code: -32700, message: "parse error: the body is not a JSON-RPC message"}

// incoming is a client's message as the proxy read it, members matched by their exact names.
type incoming struct {
	Raw    []byte // the proxy's own encoding of the whole message
	ID     json.RawMessage
	Method string
	Params json.RawMessage
	params map[string]json.RawMessage // Params' members
	meta   map[string]json.RawMessage // params._meta's members, decoded once for both paths
}

// decodeIncoming reads one JSON-RPC message strictly (see reencode) and checks its envelope. Errors are
// *envelopeError; the message's ID is set when it could be read, so that the refusal answers the request.
func decodeIncoming(body []byte) (incoming, error) {
	var msg incoming
	raw, err := reencode(body)
	if err != nil {
		if err != errParse {
			msg.ID = idOf(body) // only to label the refusal
		}
		return msg, err
	}
	msg.Raw = raw
	// Members are walked, not decoded: raw is the proxy's strict encoding, and params' values are passed on as
	// they are.
	var (
		id, jsonrpc, method, params []byte
		hasID, hasMethod, hasParams bool
		isResponse, hasBoth         bool
		unknown                     string
	)
	err = jsonobj.Each(raw, func(name, value []byte) error {
		switch string(name) {
		case "jsonrpc":
			jsonrpc = value
		case "id":
			id, hasID = value, true
		case "method":
			method, hasMethod = value, true
		case "params":
			params, hasParams = value, true
		case "result", "error":
			hasBoth = isResponse
			isResponse = true
		default:
			if unknown == "" {
				unknown = string(name)
			}
		}
		return nil
	})
	if err != nil {
		return msg, invalidRequest("a JSON-RPC message is an object")
	}
	if hasID {
		if msg.ID = idValue(id); msg.ID == nil {
			return msg, invalidRequest(`"id" must be a string or a number`)
		}
	}
	if unknown != "" {
		return msg, invalidRequest("member %q is not part of a JSON-RPC 2.0 message", unknown)
	}
	if string(jsonrpc) != `"2.0"` {
		return msg, invalidRequest(`"jsonrpc" must be "2.0"`)
	}
	if hasBoth {
		return msg, invalidRequest("a response has a result or an error, not both")
	}
	switch {
	case isResponse && (hasMethod || hasParams || msg.ID == nil):
		return msg, invalidRequest("a response has an id and no method or params")
	case !isResponse && (!hasMethod || method[0] != '"' || string(method) == `""`):
		return msg, invalidRequest(`"method" must be a non-empty string`)
	case !isResponse:
		name, err := jsontext.AppendUnquote(nil, method)
		if err != nil {
			return msg, invalidRequest(`"method" must be a non-empty string`)
		}
		msg.Method = string(name)
	}
	if hasParams {
		if msg.params, err = members(params); err != nil {
			return msg, invalidRequest(`"params" must be an object`)
		}
		msg.Params = params
		if meta, ok := msg.params["_meta"]; ok {
			if msg.meta, err = members(meta); err != nil {
				return msg, invalidRequest(`"params._meta" must be an object`)
			}
		}
	}
	return msg, nil
}

// members are an object's members by name, their values as written.
func members(obj []byte) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	err := jsonobj.Each(obj, func(name, value []byte) error {
		m[string(name)] = value
		return nil
	})
	return m, err
}

// idOf returns the id of a message the proxy could not re-encode, to label its refusal (see idValue).
func idOf(body []byte) json.RawMessage {
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	return idValue(m.ID)
}

// idValue returns an id when it is a string or a number (MCP: never null), else nil.
func idValue(id json.RawMessage) json.RawMessage {
	if len(id) == 0 {
		return nil
	}
	if c := id[0]; c != '"' && c != '-' && (c < '0' || c > '9') {
		return nil
	}
	return id
}

// reencode reads one JSON value and writes it anew: RFC 7493's I-JSON (no member name twice at any depth, valid
// UTF-8, no lone surrogates), compact, strings in their shortest encoding, numbers as written.
func reencode(body []byte) ([]byte, error) {
	out, err := jsontext.AppendFormat(nil, body)
	if err == nil {
		return out, nil
	}
	if !json.Valid(body) {
		return nil, errParse
	}
	return nil, invalidRequest("%s", strings.TrimPrefix(err.Error(), "jsontext: "))
}
