package transport

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeIncomingRefusesWhatAChildCouldReadOtherwise(t *testing.T) {
	for body, code := range map[string]int{
		"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"x\":{\n\"a\":1\n}}":               -32600, // a member JSON-RPC does not have
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","name":"add"}}`: -32600, // which name would the child take?
		`{"jsonrpc":"2.0","id":2,"id":3,"method":"ping"}`:                                      -32600,
		`{"jsonrpc":"2.0","id":2,"Method":"ping"}`:                                             -32600, // Go would match it, a child would not
		`{"jsonrpc":"2.0","id":2,"method":"x","params":{"arguments":{"a":[{"b":1,"b":2}]}}}`:   -32600,
		`{"id":2,"method":"ping"}`:                                                             -32600,
		`{"jsonrpc":"2.0","id":null,"method":"ping"}`:                                          -32600,
		`{"jsonrpc":"2.0","id":{},"method":"ping"}`:                                            -32600,
		`{"jsonrpc":"2.0","id":2,"method":"ping","params":[1]}`:                                -32600,
		`{"jsonrpc":"2.0","id":2,"method":"x","params":{"_meta":1}}`:                           -32600,
		`{"jsonrpc":"2.0","id":2,"result":{},"error":{}}`:                                      -32600,
		`{"jsonrpc":"2.0","result":{}}`:                                                        -32600,
		`{"jsonrpc":"2.0","id":2}`:                                                             -32600,
		"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"p\xffing\"}":                               -32600,
		`{"jsonrpc":"2.0","id":2,"method":"ping","params":{"s":"\ud800"}}`:                     -32600, // a lone surrogate
		`{"jsonrpc":"2.0","id":2,"method":"ping"}{}`:                                           -32700,
		`{"jsonrpc":"2.0","id":2,"method":"ping"`:                                              -32700,
		`"ping"`: -32600,
	} {
		_, err := decodeIncoming([]byte(body))
		var e *envelopeError
		require.ErrorAs(t, err, &e, body)
		assert.Equal(t, code, e.code, "%s: %s", body, e.message)
	}
}

func TestDecodeIncomingWritesTheMessageAnew(t *testing.T) {
	msg, err := decodeIncoming([]byte("{ \"jsonrpc\" : \"2.0\",\n\"id\":\"a\\u0062\", \"method\":\"tools/call\",\"params\":{\"name\":\"\\u0065cho\",\"arguments\":{\"n\":1.50e3,\"s\":[true,null,\"<&>\"]},\"_meta\":{\"progressToken\":7}}}"))
	require.NoError(t, err)
	assert.Equal(t, `{"jsonrpc":"2.0","id":"ab","method":"tools/call","params":{"name":"echo","arguments":{"n":1.50e3,"s":[true,null,"<&>"]},"_meta":{"progressToken":7}}}`, string(msg.Raw))
	assert.Equal(t, `"ab"`, string(msg.ID))
	assert.Equal(t, "tools/call", msg.Method)
	assert.Equal(t, `"echo"`, string(msg.params["name"]))
	assert.Equal(t, "7", string(msg.meta["progressToken"]))

	for _, ok := range []string{
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":-1,"result":{}}`,
		`{"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"no"}}`,
	} {
		msg, err := decodeIncoming([]byte(ok))
		require.NoError(t, err, ok)
		assert.Equal(t, ok, string(msg.Raw))
	}
}
