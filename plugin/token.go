package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// tokenHeader is the JOSE header of an access token (RFC 7515 §4).
type tokenHeader struct {
	Alg  string      `json:"alg"`
	Typ  string      `json:"typ"`
	Kid  string      `json:"kid"`
	Crit interface{} `json:"crit"`
}

// tokenClaims are the RFC 9068 claims the middleware reads. Numeric dates are float64 because RFC 7519 allows
// fractions; pointers tell a missing claim from zero.
type tokenClaims struct {
	Iss      string      `json:"iss"`
	Sub      string      `json:"sub"`
	Aud      interface{} `json:"aud"`
	ClientID string      `json:"client_id"`
	Scope    string      `json:"scope"`
	Iat      *float64    `json:"iat"`
	Nbf      *float64    `json:"nbf"`
	Exp      *float64    `json:"exp"`
	Jti      string      `json:"jti"`
	Username string      `json:"username"`
	Email    string      `json:"email"`
}

// parsedToken is a structurally valid JWS whose signature is not checked yet.
type parsedToken struct {
	alg          string
	kid          string
	signingInput string
	sig          []byte
	claims       tokenClaims
}

// parseToken splits and decodes a compact JWS (RFC 7515 §7.1) and its claims. Every message it returns is safe to
// show the client as error_description.
func parseToken(tok string, maxBytes int, algs map[string]bool) (*parsedToken, error) {
	if len(tok) > maxBytes {
		return nil, fmt.Errorf("token is %d bytes, the limit is %d", len(tok), maxBytes)
	}
	parts := strings.Split(tok, ".")
	if len(parts) == 5 {
		return nil, errors.New("encrypted tokens (JWE) are not accepted")
	}
	if len(parts) != 3 {
		return nil, errors.New("token is not a compact JWS (three base64url parts separated by dots)")
	}
	hb, err := b64(parts[0])
	if err != nil {
		return nil, errors.New("token header is not strict base64url")
	}
	var h tokenHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, errors.New("token header is not a JSON object")
	}
	if h.Alg == "none" || h.Alg == "" {
		return nil, errors.New("unsigned tokens (alg none) are not accepted")
	}
	if !algs[h.Alg] {
		return nil, fmt.Errorf("alg %s is not accepted", quoteSafe(h.Alg))
	}
	// RFC 9068 §4: the resource server must check typ, so an ID token or another JWT cannot pass as an access token.
	if h.Typ != "at+jwt" && h.Typ != "application/at+jwt" {
		return nil, errors.New("token typ is not at+jwt (RFC 9068)")
	}
	if h.Crit != nil {
		return nil, errors.New("token header has crit extensions this server does not understand")
	}
	if h.Kid == "" {
		return nil, errors.New("token header has no kid")
	}
	sig, err := b64(parts[2])
	if err != nil || len(sig) == 0 {
		return nil, errors.New("token signature is not strict base64url")
	}
	cb, err := b64(parts[1])
	if err != nil {
		return nil, errors.New("token payload is not strict base64url")
	}
	pt := &parsedToken{alg: h.Alg, kid: h.Kid, signingInput: tok[:len(parts[0])+1+len(parts[1])], sig: sig}
	if err := json.Unmarshal(cb, &pt.claims); err != nil {
		return nil, errors.New("token claims are not a JSON object of the expected types")
	}
	return pt, nil
}

// checkClaims applies RFC 9068 §4 validation: issuer, audience (RFC 8707), time window and required claims.
func checkClaims(c *tokenClaims, s *settings, now time.Time) error {
	if c.Iss != s.issuer {
		return fmt.Errorf("token issuer '%s' is not %s", quoteSafe(c.Iss), s.issuer)
	}
	if !audienceHas(c.Aud, s.resource) {
		return fmt.Errorf("token audience does not include %s (the token was issued for another resource)", s.resource)
	}
	t := float64(now.UnixNano()) / 1e9
	skew := s.skew.Seconds()
	if c.Exp == nil {
		return errors.New("token has no exp")
	}
	if t >= *c.Exp+skew {
		return errors.New("token has expired")
	}
	if c.Nbf != nil && t < *c.Nbf-skew {
		return errors.New("token is not valid yet (nbf)")
	}
	if c.Iat == nil {
		return errors.New("token has no iat")
	}
	if *c.Iat > t+skew {
		return errors.New("token was issued in the future (iat)")
	}
	if c.Sub == "" || c.ClientID == "" || c.Jti == "" {
		return errors.New("token lacks sub, client_id or jti (RFC 9068 §2.2)")
	}
	for _, v := range []string{c.Sub, c.ClientID, c.Scope, c.Username, c.Email} {
		if !headerSafe(v) {
			return errors.New("token has control characters in an identity claim")
		}
	}
	return nil
}

func audienceHas(aud interface{}, resource string) bool {
	switch a := aud.(type) {
	case string:
		return a == resource
	case []interface{}:
		for _, v := range a {
			if s, ok := v.(string); ok && s == resource {
				return true
			}
		}
	}
	return false
}

// headerSafe reports whether v can be sent as a header value unchanged.
func headerSafe(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// quoteSafe makes client-supplied text safe inside a quoted-string of WWW-Authenticate (RFC 6750 §3 forbids " and \
// in error_description) and keeps it short.
func quoteSafe(v string) string {
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b.WriteByte('?')
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
