package login

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// GitHub is the GitHub provider's name. Users logged in before there was more than one provider have no provider in
// their records; they are GitHub's.
const GitHub = "github"

// Provider is what the login flow knows of an identity provider: where to send the browser, how to finish the
// round trip when the provider sends it back, and which of its access rules can be checked again at token refresh.
// Implementations (login/github, login/oidc) are safe for concurrent use.
type Provider interface {
	// Name identifies the provider in settings, in its callback path and in its users' ids ("github", "google").
	Name() string
	// DisplayName is what users read on the chooser, consent and refusal pages ("GitHub", "Google").
	DisplayName() string
	// CallbackPath is where the provider returns the browser, relative to the issuer ("/github/callback").
	CallbackPath() string
	// AuthCodeURL is where the browser goes to log in. state comes back unchanged to the callback; the attempt's
	// PKCE verifier (sent as its S256 challenge) and nonce are used as far as the provider supports them. An error
	// wrapping ErrUnavailable: the provider cannot be reached for now; ErrNeedsUser: the attempt is silent and the
	// provider cannot promise to show the user nothing.
	AuthCodeURL(ctx context.Context, state string, a store.LoginAttempt) (string, error)
	// Login finishes the round trip the provider answered with cb: it redeems the code, learns who the user is and
	// applies the provider's access rules. A refused user gives a *DeniedError; other failures are wrapped errors.
	Login(ctx context.Context, cb Callback, a store.LoginAttempt) (*store.User, error)
	// MayRefresh re-checks, at token refresh, the access rules that can be checked without the provider (no user
	// is at hand to log in): it reports whether u may still refresh, and if not, why.
	MayRefresh(u store.User) (ok bool, reason string)
}

// Callback is what the provider sent back to the callback URL (besides state, which the login service checks).
type Callback struct {
	Code string
	// Issuer is the authorization response's iss parameter (RFC 9207), empty when the provider sends none.
	Issuer string
}

// DeniedError is a user the provider vouched for whom its access rules refuse. Reason is written for that user: it
// says why, and never lists who is allowed.
type DeniedError struct {
	Login  string // who tried, as the provider names them
	Reason string
}

func (e *DeniedError) Error() string { return "access denied: " + e.Reason }

// ErrUnavailable: the provider cannot be reached for now (an OpenID provider whose discovery document could not be
// read); its logins wait until it answers, the other providers' go on.
var ErrUnavailable = errors.New("the identity provider cannot be reached")

// ErrNeedsUser: a silent login (OpenID Connect prompt=none) was asked of a provider that cannot promise to show the
// user nothing.
var ErrNeedsUser = errors.New("the identity provider cannot log a user in without showing a page")

// ErrCodeRejected: the provider refused the code (expired, already used, or not issued for this attempt). The user
// should log in again; it is not a fault of this server.
var ErrCodeRejected = errors.New("the identity provider refused the login code (expired or already used); log in again")

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// CheckName reports whether name can name a provider: lower-case letters, digits and hyphens, starting with a letter,
// at most 31 characters. It appears in URLs, settings and every user id of the provider.
func CheckName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("identity provider name %q: use lower-case letters, digits and hyphens, starting with a letter (at most 31), e.g. google", name)
	}
	return nil
}

// UserID is the id (the tokens' sub) of a user of provider name whose provider-side id is sub: "name:sub". GitHub's
// users keep their bare numeric ids, which were the only ids before there were other providers; no other provider's
// ids can collide with them, since they all contain a colon.
func UserID(name, sub string) string {
	if name == GitHub {
		return sub
	}
	return name + ":" + sub
}

// ValidUserID reports whether id can be a user's id: a GitHub numeric id, or "<provider>:<sub>" with a provider name
// and a sub of at most 255 bytes without control characters.
func ValidUserID(id string) bool {
	if id != "" && strings.Trim(id, "0123456789") == "" {
		return true
	}
	name, sub, ok := strings.Cut(id, ":")
	if !ok || CheckName(name) != nil {
		return false
	}
	clean, err := CleanText("sub", sub, 255)
	return err == nil && clean == sub
}

// ProviderOf names the provider of a user record (GitHub for records from before there were several providers).
func ProviderOf(u store.User) string {
	if u.Provider == "" {
		return GitHub
	}
	return u.Provider
}

// CleanText checks a value a provider gave (an id, a login, a name) before it goes into tokens, headers, logs and
// file names: non-empty after trimming, at most max bytes, and free of control characters (including the
// bidirectional ones that make text read otherwise than it is).
func CleanText(what, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("the provider sent an empty %s", what)
	}
	if len(s) > max {
		return "", fmt.Errorf("the provider sent a %s of %d bytes (at most %d)", what, len(s), max)
	}
	if strings.IndexFunc(s, Unprintable) >= 0 {
		return "", fmt.Errorf("the provider sent a %s with control characters", what)
	}
	return s, nil
}

// Unprintable reports the runes a provider's values must not carry: control characters and bidirectional controls.
func Unprintable(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }
