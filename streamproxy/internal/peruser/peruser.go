// Package peruser gives each user's MCP server process settings of its own: `{user}` in an environment value or the
// working directory becomes the caller's identity (the stable user id the gateway vouched for), so that a stateful
// server keeps each user's state in that user's directory.
//
// An identity becomes one path segment that cannot leave its parent: characters outside [A-Za-z0-9_-] (a dot that
// starts the segment, "/", NUL, anything non-ASCII) are percent-escaped, so distinct ids stay distinct, and an id too
// long for a file name is replaced by a hash of it, under a name no escaped id can have.
package peruser

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Placeholder is what a child setting writes for the caller's identity.
const Placeholder = "{user}"

// ErrNoIdentity is returned for a child with per-user settings and no identity to put in them.
var ErrNoIdentity = errors.New("this MCP server keeps per-user state and the request carries no user identity")

// maxSegment bounds the escaped identity, well under a file name's 255 bytes.
const maxSegment = 128

// hashedPrefix starts the name of an identity too long to escape. Segment escapes "@" wherever it occurs, so no
// escaped identity starts with it: an id that is literally "sha256-<hex>" cannot take a long id's directory.
const hashedPrefix = "@sha256-"

// Settings are the per-user parts of a child's settings.
type Settings struct {
	Env []string // KEY=value, as given
	Dir string   // working directory, as given
}

// Uses reports whether any setting names the user.
func (s Settings) Uses() bool {
	if strings.Contains(s.Dir, Placeholder) {
		return true
	}
	for _, kv := range s.Env {
		if strings.Contains(kv, Placeholder) {
			return true
		}
	}
	return false
}

// For returns the settings for one user, with each directory that holds the user's segment created (0700, so that
// other accounts on the host cannot read it). Settings without the placeholder pass unchanged.
func (s Settings) For(user string) ([]string, string, error) {
	if !s.Uses() {
		return s.Env, s.Dir, nil
	}
	if user == "" {
		return nil, "", ErrNoIdentity
	}
	seg := Segment(user)
	env := make([]string, len(s.Env))
	for i, kv := range s.Env {
		env[i] = kv
		if !strings.Contains(kv, Placeholder) {
			continue
		}
		key, value, _ := strings.Cut(kv, "=")
		env[i] = key + "=" + strings.ReplaceAll(value, Placeholder, seg)
		if err := ensureUserDir(value, seg); err != nil {
			return nil, "", fmt.Errorf("%s: %w", key, err)
		}
	}
	dir := s.Dir
	if strings.Contains(dir, Placeholder) {
		dir = strings.ReplaceAll(dir, Placeholder, seg)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, "", fmt.Errorf("working directory: %w", err)
		}
	}
	return env, dir, nil
}

// Paths returns, for one user, the paths their settings name for them: the working directory when it holds the
// placeholder, and for each absolute --env value that holds it the directory with the user's segment, or the file
// it names. The sandbox lets the user's process write beneath them.
func (s Settings) Paths(user string) []string {
	if !s.Uses() || user == "" {
		return nil
	}
	seg := Segment(user)
	var paths []string
	for _, kv := range s.Env {
		_, value, _ := strings.Cut(kv, "=")
		if filepath.IsAbs(value) {
			if p := userPath(value); p != "" {
				paths = append(paths, strings.ReplaceAll(p, Placeholder, seg))
			}
		}
	}
	if strings.Contains(s.Dir, Placeholder) {
		paths = append(paths, strings.ReplaceAll(s.Dir, Placeholder, seg))
	}
	return paths
}

// SharedDirFiles returns the names of the --env settings whose user's segment is in a file's name, in a directory
// all users share (/data/{user}.json): a confined process may write that file once it exists, but not create it,
// nor write the temporary file beside it that replaces it (as server-memory does). The working directory named
// again (HOME, TMPDIR) is the user's own directory, which exists.
func (s Settings) SharedDirFiles() []string {
	var names []string
	for _, kv := range s.Env {
		key, value, _ := strings.Cut(kv, "=")
		if filepath.IsAbs(value) && userPath(value) == value && filepath.Clean(value) != filepath.Clean(s.Dir) {
			names = append(names, key)
		}
	}
	return names
}

// userPath is an absolute value cut after the component that holds the placeholder: /data/users/{user} for
// /data/users/{user}/memory.json, /data/{user}.json whole; "" without the placeholder.
func userPath(value string) string {
	parts := strings.Split(value, "/")
	for i, p := range parts {
		if strings.Contains(p, Placeholder) {
			return strings.Join(parts[:i+1], "/")
		}
	}
	return ""
}

// ensureUserDir creates, for an absolute path, the directory up to the component that holds the placeholder
// (/data/users/<id> for /data/users/{user}/memory.json; /data for /data/{user}.json, whose file the server creates).
// Values that are not paths are left alone.
func ensureUserDir(value, seg string) error {
	if !filepath.IsAbs(value) {
		return nil
	}
	p := userPath(value)
	if p == "" {
		return nil
	}
	if p == value {
		p = filepath.Dir(p) // the user's segment names a file: its directory must exist
	}
	return os.MkdirAll(strings.ReplaceAll(p, Placeholder, seg), 0o700)
}

// Segment turns an identity into one safe path segment.
func Segment(user string) string {
	var b strings.Builder
	for i := 0; i < len(user); i++ {
		c := user[i]
		safe := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || (c == '.' && i > 0)
		if safe {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() > maxSegment {
		sum := sha256.Sum256([]byte(user))
		return hashedPrefix + hex.EncodeToString(sum[:])
	}
	return b.String()
}
