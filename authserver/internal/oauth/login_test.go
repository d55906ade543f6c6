package oauth_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// loginsOf is the login service over the providers, on the store.
func loginsOf(t *testing.T, st store.Store, providers ...login.Provider) *login.Service {
	t.Helper()
	s, err := login.New(st, providers...)
	require.NoError(t, err)
	return s
}
