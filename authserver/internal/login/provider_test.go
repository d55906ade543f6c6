package login_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// GitHub's users keep the bare numeric ids they had before there were other providers; every other provider's ids
// carry its name, so no two providers' users can share an id.
func TestUserIDs(t *testing.T) {
	assert.Equal(t, "583231", login.UserID(login.GitHub, "583231"))
	assert.Equal(t, "google:583231", login.UserID("google", "583231"))
	assert.Equal(t, login.GitHub, login.ProviderOf(store.User{ID: "583231"}), "records from before have no provider: GitHub's")
	assert.Equal(t, "okta", login.ProviderOf(store.User{ID: "okta:x", Provider: "okta"}))

	for id, ok := range map[string]bool{
		"583231": true, "google:110248495921238986420": true, "corp-sso:a b@c": true,
		"": false, "octo": false, ":x": false, "Google:x": false, "google:": false, "google:a\nb": false,
		"google:" + strings.Repeat("x", 256): false,
	} {
		assert.Equal(t, ok, login.ValidUserID(id), "%q", id)
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"google", "entra-id", "okta2", "k"} {
		assert.NoError(t, login.CheckName(ok), ok)
	}
	for _, bad := range []string{"", "Google", "2fa", "my_idp", "a/b", "-x", strings.Repeat("a", 32)} {
		assert.Error(t, login.CheckName(bad), bad)
	}
}

func TestCleanText(t *testing.T) {
	s, err := login.CleanText("name", "  Ada  ", 10)
	assert.NoError(t, err)
	assert.Equal(t, "Ada", s)
	for _, bad := range []string{"", "   ", "a\x00b", "a\u202eb", strings.Repeat("x", 11)} {
		_, err := login.CleanText("name", bad, 10)
		assert.Error(t, err, "%q", bad)
	}
}
