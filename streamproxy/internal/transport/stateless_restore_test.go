package transport

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

// A child's response goes back under the client's id; a bridged child's result is marked complete, unless it says
// what it is itself. Both as the re-encoding restore would write them, member order aside.
func TestRestoredResponses(t *testing.T) {
	for _, c := range []struct {
		bridged       bool
		result, error string
		want          string
	}{
		{false, `{"content":[{"type":"text","text":"hi"}]}`, "", `{"jsonrpc":"2.0","id":"c-1","result":{"content":[{"type":"text","text":"hi"}]}}`},
		{true, `{"content":[{"type":"text","text":"hi"}]}`, "", `{"jsonrpc":"2.0","id":"c-1","result":{"content":[{"type":"text","text":"hi"}],"resultType":"complete"}}`},
		{true, `{}`, "", `{"jsonrpc":"2.0","id":"c-1","result":{"resultType":"complete"}}`},
		{true, `{ }`, "", `{"jsonrpc":"2.0","id":"c-1","result":{"resultType":"complete"}}`},
		{true, `{"resultType":"input_required","inputRequests":{}}`, "", `{"jsonrpc":"2.0","id":"c-1","result":{"resultType":"input_required","inputRequests":{}}}`},
		{true, "", `{"code":-32602,"message":"bad"}`, `{"jsonrpc":"2.0","id":"c-1","error":{"code":-32602,"message":"bad"}}`},
	} {
		wk := &worker{}
		if c.bridged {
			wk.bridged = &bridgedChild{}
		}
		x := &exchange{h: New(Config{}), wk: wk, q: &statelessRequest{ID: json.RawMessage(`"c-1"`), Method: "tools/call"}}
		line := `{"jsonrpc":"2.0","id":3`
		m := &session.Message{ID: json.RawMessage("3")}
		if c.result != "" {
			m.Result, line = json.RawMessage(c.result), line+`,"result":`+c.result+`}`
		} else {
			m.Error, line = json.RawMessage(c.error), line+`,"error":`+c.error+`}`
		}
		m.Raw = []byte(line)
		out, err := x.restore(m)
		require.NoError(t, err)
		assert.JSONEq(t, c.want, string(out), "%s%s", c.result, c.error)
	}
}
