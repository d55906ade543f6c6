package peruser

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSegmentStaysOneSafeSegment(t *testing.T) {
	for in, want := range map[string]string{
		"1000001":      "1000001",
		"github:42":    "github%3A42",
		"..":           "%2E.",
		".hidden":      "%2Ehidden",
		"../alice":     "%2E.%2Falice",
		"a/b":          "a%2Fb",
		"nul\x00byte":  "nul%00byte",
		"é":            "%C3%A9",
		"a%2Fb":        "a%252Fb", // the escape character is escaped: distinct ids stay distinct
		"v1.2":         "v1.2",
		"auth0|abc123": "auth0%7Cabc123",
		"@sha256-00":   "%40sha256-00", // "@" starts only the hashed names of long ids
	} {
		got := Segment(in)
		assert.Equal(t, want, got, "%q", in)
		assert.NotContains(t, got, "/")
		assert.NotEqual(t, "..", got)
	}
	long := Segment(strings.Repeat("x", 500))
	assert.True(t, strings.HasPrefix(long, "@sha256-"))
	assert.LessOrEqual(t, len(long), maxSegment)
	assert.NotEqual(t, long, Segment(strings.Repeat("x", 501)))
}

// A long id's hashed name is not the escaped form of any id: not of an id that is literally that name, nor of the
// same name without its marker.
func TestHashedSegmentCannotBeNamed(t *testing.T) {
	long := Segment(strings.Repeat("x", 500))
	for _, claimed := range []string{long, strings.TrimPrefix(long, "@")} {
		assert.NotEqual(t, long, Segment(claimed), "an id of %q shares the long id's directory", claimed)
	}
}

func TestForCreatesThePrivateUserDirectory(t *testing.T) {
	base := t.TempDir()
	s := Settings{Env: []string{"MEMORY_FILE_PATH=" + base + "/users/{user}/memory.json", "MODE=plain", "TAG=user-{user}"},
		Dir: base + "/work/{user}"}
	require.True(t, s.Uses())
	env, dir, err := s.For("../alice")
	require.NoError(t, err)
	seg := "%2E.%2Falice"
	assert.Equal(t, []string{"MEMORY_FILE_PATH=" + base + "/users/" + seg + "/memory.json", "MODE=plain", "TAG=user-" + seg}, env)
	assert.Equal(t, filepath.Join(base, "work", seg), dir)
	for _, d := range []string{filepath.Join(base, "users", seg), dir} {
		info, err := os.Stat(d)
		require.NoError(t, err)
		assert.True(t, info.IsDir())
		assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "%s is the user's alone", d)
	}
	entries, err := os.ReadDir(base)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"users", "work"}, names, "nothing escaped the base directory")

	_, _, err = s.For("")
	assert.ErrorIs(t, err, ErrNoIdentity, "no identity never means a shared or empty path")

	plain := Settings{Env: []string{"A=b"}, Dir: "/srv"}
	env, dir, err = plain.For("")
	require.NoError(t, err)
	assert.Equal(t, []string{"A=b"}, env)
	assert.Equal(t, "/srv", dir)
}

// The paths a user's process may write are the ones their settings name for them, and nothing above them.
func TestPathsAreTheUsersOwn(t *testing.T) {
	s := Settings{Env: []string{"MEMORY_FILE_PATH=/data/users/{user}/memory.json", "STATE=/data/{user}.json",
		"TAG=user-{user}", "SHARED=/data/shared"}, Dir: "/work/{user}/home"}
	assert.Equal(t, []string{"/data/users/%2E.%2Falice", "/data/%2E.%2Falice.json", "/work/%2E.%2Falice/home"},
		s.Paths("../alice"))
	assert.Empty(t, s.Paths(""), "no identity, no paths")
	assert.Empty(t, Settings{Env: []string{"F=/data/f"}, Dir: "/srv"}.Paths("alice"), "shared settings name no user's path")
	assert.Equal(t, []string{"STATE"}, s.SharedDirFiles())
	// The working directory, named again as a home or a temporary directory, is the user's directory, not a file.
	home := Settings{Env: []string{"HOME=/data/users/{user}", "TMPDIR=/data/users/{user}"}, Dir: "/data/users/{user}"}
	assert.Empty(t, home.SharedDirFiles())
}
