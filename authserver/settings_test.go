package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Scopes, their descriptions and the declared groups that cannot work stop the start, with the flag named.
func TestScopeAndGroupSettingsRefusedAtStart(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--scopes", "mcp,a b"}, `--scopes: scope "a b"`},
		{[]string{"--scopes", "mcp,mcp"}, "--scopes: scope \"mcp\" is offered twice"},
		{[]string{"--scope-descriptions", "admin=administer"}, `--scope-descriptions: scope "admin" has a description but is not offered`},
		{[]string{"--groups", "staff,domain admins"}, `--groups: group "domain admins"`},
	} {
		err := run(append([]string{"--issuer", "http://127.0.0.1:1", "--data-file", t.TempDir() + "/s.jsonl"}, c.args...), io.Discard, io.Discard)
		assert.ErrorContains(t, err, c.want, c.args)
	}
}
