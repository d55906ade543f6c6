// Package clientassertion verifies the client assertions of private_key_jwt client authentication (RFC 7523 §2.2
// and §3, as RFC 7591 and the Client ID Metadata Document draft use it): the client signs a short-lived JWT with its
// own private key and sends it as client_assertion; the authorization server checks it against the public keys the
// client published. The other client authentication methods are oauth's (clientauth.go).
//
// What is checked: the JWS algorithm is one of an allow-list (RS256, PS256, ES256: never "none" nor an HMAC, and
// only the client's declared algorithm when it declared one); the signature verifies with one of the client's keys
// (by kid, fetching the set again once when the kid is new); iss and sub are both the client_id; aud is one string,
// one of the values the caller names (draft-ietf-oauth-rfc7523bis: the issuer identifier), never a list, which is
// checked first, before any key is fetched; exp is present, not past and at most MaxLifetime ahead; nbf and iat are
// not in the future; jti is present and used once (remembered in the store until the assertion expires). Parsing
// and signature checks are golang-jwt's.
package clientassertion

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Type is the client_assertion_type of RFC 7523 §2.2.
const Type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Defaults of a Verifier.
const (
	DefaultMaxLifetime = 10 * time.Minute
	DefaultLeeway      = time.Minute
	maxAssertionBytes  = 16 << 10
	maxJTILength       = 256
)

// Keys returns a client's public keys. fresh asks for a newer copy than a cached one: the assertion names a key id
// the cached set does not have.
type Keys func(ctx context.Context, fresh bool) ([]jwk.Key, error)

// JTIs remembers used assertion ids (store.Store does).
type JTIs interface {
	UseJTI(ctx context.Context, key string, exp time.Time) error
}

// Verifier checks client assertions. Its zero durations take the defaults.
type Verifier struct {
	JTIs        JTIs
	MaxLifetime time.Duration    // how far ahead exp may be; default 10 min
	Leeway      time.Duration    // clock skew allowed on exp, nbf and iat; default 1 min
	Now         func() time.Time // default time.Now
}

// Request is one assertion to check.
type Request struct {
	ClientID  string   // the client it must come from (iss and sub)
	Alg       string   // the client's declared token_endpoint_auth_signing_alg; empty: any of jwk.Algorithms
	Keys      Keys     // the client's public keys
	Audiences []string // the values aud may take, as one string: the first is the issuer identifier
	Assertion string   // client_assertion
}

// Error is an assertion refused; its message tells the client's developer what to fix. Other errors from Verify
// are failures of the store or of fetching keys that are not the client's fault.
type Error struct{ Reason string }

func (e *Error) Error() string { return "client assertion: " + e.Reason }

func refuse(format string, a ...any) error { return &Error{Reason: fmt.Sprintf(format, a...)} }

// Issuer reads the iss claim of an assertion without verifying anything, to find the client when a request names
// none (RFC 7523 §3 lets client_id be omitted). Verify must still be called.
func Issuer(assertion string) (string, error) {
	if len(assertion) > maxAssertionBytes {
		return "", refuse("longer than %d bytes", maxAssertionBytes)
	}
	claims := jwt.RegisteredClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &claims); err != nil {
		return "", refuse("not a JWT: %v", err)
	}
	if claims.Issuer == "" {
		return "", refuse("iss is missing: it must be the client_id")
	}
	return claims.Issuer, nil
}

// Verify checks an assertion. It returns nil, an *Error, or another error (store or key source unavailable).
func (v *Verifier) Verify(ctx context.Context, r Request) error {
	if len(r.Assertion) > maxAssertionBytes {
		return refuse("longer than %d bytes", maxAssertionBytes)
	}
	if err := checkAudience(r.Assertion, r.Audiences); err != nil {
		return err
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	maxLife := cmpOr(v.MaxLifetime, DefaultMaxLifetime)
	leeway := cmpOr(v.Leeway, DefaultLeeway)
	algs := jwk.Algorithms
	if r.Alg != "" {
		if !slices.Contains(jwk.Algorithms, r.Alg) {
			return refuse("the client declares token_endpoint_auth_signing_alg %s, which this server does not accept (%s)",
				r.Alg, strings.Join(jwk.Algorithms, ", "))
		}
		algs = []string{r.Alg}
	}

	var keyErr error // why no key was found, kept apart from the library's wrapping
	keyfunc := func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			keyErr = refuse("its header has crit extensions, which this server does not understand")
			return nil, keyErr
		}
		kid, _ := t.Header["kid"].(string)
		alg := t.Method.Alg()
		pick := func(keys []jwk.Key) []jwt.VerificationKey {
			var out []jwt.VerificationKey
			for _, k := range keys {
				if k.Fits(alg) && (kid == "" || k.ID == kid) {
					out = append(out, k.Public)
				}
			}
			return out
		}
		keys, err := r.Keys(ctx, false)
		if err != nil {
			keyErr = err
			return nil, err
		}
		found := pick(keys)
		if len(found) == 0 && kid != "" {
			if keys, err = r.Keys(ctx, true); err != nil {
				keyErr = err
				return nil, err
			}
			found = pick(keys)
		}
		if len(found) == 0 {
			if kid != "" {
				keyErr = refuse("the client's keys have no %s key with kid %q", alg, kid)
			} else {
				keyErr = refuse("the client's keys have no %s key", alg)
			}
			return nil, keyErr
		}
		return jwt.VerificationKeySet{Keys: found}, nil
	}

	claims := jwt.RegisteredClaims{}
	_, err := jwt.NewParser(
		jwt.WithValidMethods(algs),
		jwt.WithIssuer(r.ClientID),
		jwt.WithSubject(r.ClientID),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	).ParseWithClaims(r.Assertion, &claims, keyfunc)
	if err != nil {
		if keyErr != nil {
			return keyErr
		}
		return explain(err, algs, r)
	}

	exp := claims.ExpiresAt.Time
	if exp.Sub(now()) > maxLife+leeway {
		return refuse("exp is %s ahead; an assertion may live at most %s", exp.Sub(now()).Round(time.Second), maxLife)
	}
	if claims.ID == "" {
		return refuse("jti is required (RFC 7523 §3): a unique id, so the assertion cannot be replayed")
	}
	if len(claims.ID) > maxJTILength {
		return refuse("jti is longer than %d characters", maxJTILength)
	}
	// Remembered until the assertion can no longer pass the exp check.
	err = v.JTIs.UseJTI(ctx, store.HashSecret(r.ClientID+"\x00"+claims.ID), exp.Add(leeway))
	if errors.Is(err, store.ErrReused) {
		return refuse("it was already used (jti %q): sign a new assertion, with a new jti, for every request", claims.ID)
	}
	if err != nil {
		return fmt.Errorf("remember the assertion's jti: %w", err)
	}
	return nil
}

// checkAudience applies draft-ietf-oauth-rfc7523bis to aud, before the signature is checked (what it reads decides
// nothing but a refusal): aud must be one string naming this server. A list is refused even when it names this
// server: a client that signs one assertion for several audiences, or that took an audience from a metadata document
// another server controls, gives that server an assertion it can replay here (the audience injection attack).
func checkAudience(assertion string, accepted []string) error {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, claims); err != nil {
		return refuse("not a well-formed JWT")
	}
	want := "this authorization server's issuer identifier"
	if len(accepted) > 0 {
		want += ", " + accepted[0]
	}
	if len(accepted) > 1 {
		want += " (or " + strings.Join(accepted[1:], " or ") + ")"
	}
	switch aud := claims["aud"].(type) {
	case string:
		if slices.Contains(accepted, aud) {
			return nil
		}
		return refuse("aud must be %s", want)
	case nil:
		return refuse("aud is required: %s", want)
	case []any:
		return refuse("aud must be one string, %s, not a list (draft-ietf-oauth-rfc7523bis)", want)
	}
	return refuse("aud must be one string, %s", want)
}

// explain turns golang-jwt's verdict into a reason a client's developer can act on.
func explain(err error, algs []string, r Request) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse("not a well-formed JWT")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		return refuse("signed with an algorithm this server does not accept for this client (accepted: %s)", strings.Join(algs, ", "))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse("the signature does not verify with the client's published keys")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return refuse("exp is required")
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse("it has expired (exp is past): sign a new one for every request")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refuse("it is not valid yet (nbf or iat in the future): check the client's clock")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidSubject):
		return refuse("iss and sub must both be the client_id %s", r.ClientID)
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return refuse("its claims are invalid: %v", err)
	}
	return refuse("%v", err)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
