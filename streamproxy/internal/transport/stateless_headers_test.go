package transport

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"us-west1":                            "us-west1",
		"=?base64?SGVsbG8sIOS4lueVjA==?=":     "Hello, 世界",
		"=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=": "=?base64?literal?=",
		"=?base64?IHBhZGRlZCA=?=":             " padded ",
	} {
		got, err := decodeHeaderValue(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for _, bad := range []string{"=?base64?not base64!?=", "caf\xc3\xa9", "line\x01"} {
		_, err := decodeHeaderValue(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func params(t *testing.T, s string) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(s), &m))
	return m
}

func TestCheckStandardHeaders(t *testing.T) {
	call := `{"name":"get_weather","arguments":{}}`
	for name, c := range map[string]struct {
		method, params string
		headers        map[string]string
		ok             bool
	}{
		"matching":                 {"tools/call", call, map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "get_weather"}, true},
		"name in base64":           {"tools/call", call, map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?Z2V0X3dlYXRoZXI=?="}, true},
		"no method header":         {"tools/call", call, map[string]string{"Mcp-Name": "get_weather"}, false},
		"other method":             {"tools/call", call, map[string]string{"Mcp-Method": "tools/list", "Mcp-Name": "get_weather"}, false},
		"method case matters":      {"tools/call", call, map[string]string{"Mcp-Method": "Tools/Call", "Mcp-Name": "get_weather"}, false},
		"no name header":           {"tools/call", call, map[string]string{"Mcp-Method": "tools/call"}, false},
		"other name":               {"tools/call", call, map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "get_time"}, false},
		"resource uri":             {"resources/read", `{"uri":"file:///a"}`, map[string]string{"Mcp-Method": "resources/read", "Mcp-Name": "file:///a"}, true},
		"resource uri mismatch":    {"resources/read", `{"uri":"file:///a"}`, map[string]string{"Mcp-Method": "resources/read", "Mcp-Name": "file:///b"}, false},
		"unnamed method":           {"tools/list", `{}`, map[string]string{"Mcp-Method": "tools/list"}, true},
		"prompt name in base64":    {"prompts/get", `{"name":"résumé"}`, map[string]string{"Mcp-Method": "prompts/get", "Mcp-Name": "=?base64?csOpc3Vtw6k=?="}, true},
		"raw non-ASCII is refused": {"prompts/get", `{"name":"résumé"}`, map[string]string{"Mcp-Method": "prompts/get", "Mcp-Name": "résumé"}, false},
	} {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.headers {
				h.Set(k, v)
			}
			err := checkStandardHeaders(h, c.method, params(t, c.params))
			assert.Equal(t, c.ok, err == nil, "%v", err)
		})
	}
}

func TestParamHeaders(t *testing.T) {
	schema := `{"type":"object","properties":{
		"region":{"type":"string","x-mcp-header":"Region"},
		"limit":{"type":"integer","x-mcp-header":"Limit"},
		"dry":{"type":"boolean","x-mcp-header":"Dry"},
		"target":{"type":"object","properties":{"zone":{"type":"string","x-mcp-header":"Zone"}}},
		"query":{"type":"string"}}}`
	bindings := toolParamHeaders(json.RawMessage(schema))
	require.Len(t, bindings, 4)

	all := map[string]string{"Mcp-Param-Region": "us-west1", "Mcp-Param-Limit": "42", "Mcp-Param-Dry": "true", "Mcp-Param-Zone": "b"}
	for name, c := range map[string]struct {
		args    string
		headers map[string]string
		ok      bool
	}{
		"all match":                  {`{"region":"us-west1","limit":42,"dry":true,"target":{"zone":"b"},"query":"q"}`, all, true},
		"numbers compare by value":   {`{"limit":42.0}`, map[string]string{"Mcp-Param-Limit": "42"}, true},
		"absent argument, no header": {`{"query":"q"}`, nil, true},
		"null argument, no header":   {`{"region":null}`, nil, true},
		"missing header":             {`{"region":"us-west1"}`, nil, false},
		"header without argument":    {`{}`, map[string]string{"Mcp-Param-Region": "us-west1"}, false},
		"mismatch":                   {`{"region":"us-west1"}`, map[string]string{"Mcp-Param-Region": "eu-west1"}, false},
		"nested mismatch":            {`{"target":{"zone":"a"}}`, map[string]string{"Mcp-Param-Zone": "b"}, false},
		"boolean spelled otherwise":  {`{"dry":true}`, map[string]string{"Mcp-Param-Dry": "True"}, false},
		"base64 value":               {`{"region":"Zürich"}`, map[string]string{"Mcp-Param-Region": "=?base64?WsO8cmljaA==?="}, true},
		"unknown headers pass":       {`{}`, map[string]string{"Mcp-Param-Other": "x"}, true},
	} {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.headers {
				h.Set(k, v)
			}
			err := checkParamHeaders(h, bindings, json.RawMessage(c.args))
			assert.Equal(t, c.ok, err == nil, "%v", err)
		})
	}
}
