package oauth

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every spelling of this computer is loopback, so that the consent page warns about a document client that only
// returns to it and asks again every time; redirect matching stays exact in the host (only the port may differ).
func TestLoopbackSpellings(t *testing.T) {
	for _, h := range []string{"localhost", "localhost.", "LOCALHOST", "LocalHost.", "ｌｏｃａｌｈｏｓｔ", "127.0.0.1", "::1"} {
		assert.True(t, isLoopback(h), h)
	}
	for _, h := range []string{"localhost.example.com", "example.com", "10.0.0.1", "", "exa mple.ü"} {
		assert.False(t, isLoopback(h), h)
	}
	assert.True(t, loopbackOnly([]string{"http://localhost./callback", "http://LOCALHOST:3000/cb"}),
		"a document client whose redirects all lead to this computer proves nothing by its name")
	assert.True(t, isLoopbackURI("http://localhost.:8080/cb"))
	assert.False(t, redirectAllowed([]string{"http://localhost/cb"}, "http://localhost.:5000/cb"), "the host is matched exactly")
	assert.True(t, redirectAllowed([]string{"http://localhost/cb"}, "http://localhost:5000/cb"))
}
