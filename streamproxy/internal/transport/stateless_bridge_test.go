package transport

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// A bridged child speaks a session revision: the 2026-07-28 request metadata about the client is not of its
// revision and does not reach it (reading it is work for the child on every call); the rest of _meta does.
func TestBridgedChildGetsNoRequestMetadata(t *testing.T) {
	server := testenv.BuildBinary(t, "./streamproxy/testdata/metaserver")
	h := New(testConfig(server))
	t.Cleanup(h.Close)
	// metaserver speaks both generations; known to speak only the session revisions, it is bridged.
	h.childSpeaks.Store(speaksSessionsOnly)

	for _, meta := range []string{`{"` + metaClientInfo + `":{"name":"c","version":"1"},"` + metaLogLevel + `":"info","example.com/kept":"yes"}`, `{}`} {
		got := metaOf(t, h, "", meta, noEdge)
		for k := range got {
			assert.NotContains(t, k, "io.modelcontextprotocol/", "%s reached the bridged child", k)
		}
		if meta != `{}` {
			assert.Equal(t, "yes", got["example.com/kept"], "the rest of _meta reaches the child")
		}
	}
}
