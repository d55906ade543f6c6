package transport

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
)

// The request metadata headers of 2026-07-28 (SEP-2243) mirror the body so that intermediaries can route on them;
// the proxy checks them against the body before anything reaches the child, so that no component downstream can
// be told one thing by a header and another by the body.

// methodsWithName are the methods whose Mcp-Name header mirrors params.name or params.uri.
var methodsWithName = map[string]string{"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

// checkStandardHeaders checks Mcp-Method and Mcp-Name against the body.
func checkStandardHeaders(h http.Header, method string, params map[string]json.RawMessage) error {
	got, ok := h["Mcp-Method"]
	if !ok {
		return fmt.Errorf("Mcp-Method header is required (the body's method is %q)", method)
	}
	if len(got) != 1 || got[0] != method {
		return fmt.Errorf("Mcp-Method header %q does not match the body's method %q", strings.Join(got, ","), method)
	}
	field, named := methodsWithName[method]
	if !named {
		return nil
	}
	var want string
	if raw, ok := params[field]; !ok || json.Unmarshal(raw, &want) != nil {
		return nil // a request without a usable name is the server's to refuse, with the error the method defines
	}
	values, ok := h["Mcp-Name"]
	if !ok {
		return fmt.Errorf("Mcp-Name header is required for %s", method)
	}
	if len(values) != 1 {
		return fmt.Errorf("Mcp-Name header given %d times", len(values))
	}
	name, err := decodeHeaderValue(values[0])
	if err != nil {
		return fmt.Errorf("Mcp-Name header: %w", err)
	}
	if name != want {
		return fmt.Errorf("Mcp-Name header %q does not match the body's params.%s %q", name, field, want)
	}
	return nil
}

// decodeHeaderValue returns a header value as the client meant it: plain visible ASCII, or the Base64 sentinel
// "=?base64?...?=" for anything else.
func decodeHeaderValue(v string) (string, error) {
	if inner, ok := strings.CutPrefix(v, "=?base64?"); ok {
		if inner, ok = strings.CutSuffix(inner, "?="); ok {
			b, err := base64.StdEncoding.DecodeString(inner)
			if err != nil {
				return "", fmt.Errorf("invalid Base64 in %q", v)
			}
			return string(b), nil
		}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 || c > 0x7e) && c != '\t' {
			return "", fmt.Errorf("invalid character 0x%02x: values outside visible ASCII must use the =?base64?...?= form", c)
		}
	}
	return v, nil
}

// paramHeader is one x-mcp-header annotation of a tool's input schema: Mcp-Param-{name} mirrors the argument at path.
type paramHeader struct {
	name string
	path []string
}

// toolParamHeaders reads a tool's x-mcp-header annotations, which may sit on properties reachable from the schema
// root through "properties" keys only.
func toolParamHeaders(inputSchema json.RawMessage) []paramHeader {
	var out []paramHeader
	var walk func(schema json.RawMessage, prefix []string)
	walk = func(schema json.RawMessage, prefix []string) {
		var s struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if json.Unmarshal(schema, &s) != nil {
			return
		}
		for key, prop := range s.Properties {
			path := append(append([]string(nil), prefix...), key)
			var p struct {
				Header string `json:"x-mcp-header"`
			}
			if json.Unmarshal(prop, &p) == nil && p.Header != "" {
				out = append(out, paramHeader{name: p.Header, path: path})
			}
			walk(prop, path)
		}
	}
	walk(inputSchema, nil)
	return out
}

// checkParamHeaders checks the Mcp-Param-* headers a tool's annotations call for against the call's arguments.
// Headers no annotation names are not the proxy's business and pass untouched.
func checkParamHeaders(h http.Header, bindings []paramHeader, arguments json.RawMessage) error {
	for _, b := range bindings {
		header := "Mcp-Param-" + b.name
		value, present := argumentAt(arguments, b.path)
		values := h.Values(header)
		if !present {
			if len(values) > 0 {
				return fmt.Errorf("%s header given but the argument %s is absent or null", header, strings.Join(b.path, "."))
			}
			continue
		}
		if len(values) == 0 {
			return fmt.Errorf("%s header is required: the argument %s is set", header, strings.Join(b.path, "."))
		}
		if len(values) > 1 {
			return fmt.Errorf("%s header given %d times", header, len(values))
		}
		got, err := decodeHeaderValue(values[0])
		if err != nil {
			return fmt.Errorf("%s header: %w", header, err)
		}
		if !sameValue(got, value) {
			return fmt.Errorf("%s header %q does not match the argument %s", header, got, strings.Join(b.path, "."))
		}
	}
	return nil
}

// argumentAt returns the argument at a property path; null counts as absent.
func argumentAt(arguments json.RawMessage, path []string) (json.RawMessage, bool) {
	cur := arguments
	for _, key := range path {
		var obj map[string]json.RawMessage
		if json.Unmarshal(cur, &obj) != nil {
			return nil, false
		}
		next, ok := obj[key]
		if !ok {
			return nil, false
		}
		cur = next
	}
	cur = bytes.TrimSpace(cur)
	if len(cur) == 0 || string(cur) == "null" {
		return nil, false
	}
	return cur, true
}

// sameValue compares a header's text with a primitive argument: strings as they are, booleans in lower case,
// numbers by value (42 and 42.0 are the same).
func sameValue(header string, arg json.RawMessage) bool {
	switch arg[0] {
	case '"':
		var s string
		return json.Unmarshal(arg, &s) == nil && s == header
	case 't', 'f':
		return string(arg) == header
	default:
		a, okA := new(big.Float).SetString(string(arg))
		b, okB := new(big.Float).SetString(header)
		return okA && okB && a.Cmp(b) == 0
	}
}
