package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
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
// fractions. They are decoded over blankClaims, whose values no JSON number has, to tell a missing date: NaN for
// exp and iat, -Inf for nbf (which may be missing); cheaper under Yaegi than pointers.
type tokenClaims struct {
	Iss      string      `json:"iss"`
	Sub      string      `json:"sub"`
	Aud      interface{} `json:"aud"`
	ClientID string      `json:"client_id"`
	Scope    string      `json:"scope"`
	Iat      float64     `json:"iat"`
	Nbf      float64     `json:"nbf"`
	Exp      float64     `json:"exp"`
	Jti      string      `json:"jti"`
	Username string      `json:"username"`
	Email    string      `json:"email"`
}

var blankClaims = tokenClaims{Iat: math.NaN(), Nbf: math.Inf(-1), Exp: math.NaN()}

// parsedToken is a structurally valid JWS whose signature is not checked yet.
type parsedToken struct {
	alg          string
	kid          string
	signingInput string
	sig          []byte
	claims       tokenClaims
}

// Token errors. Their text is the error_description clients see. They are values built once because under Yaegi
// every expression of a function costs an allocation on each call, taken or not: a validation function full of
// fmt.Errorf calls is slow even when the token is fine.
var (
	errJWE        = errors.New("encrypted tokens (JWE) are not accepted")
	errNotJWS     = errors.New("token is not a compact JWS (three base64url parts separated by dots)")
	errLineBreak  = errors.New("token contains a line break")
	errHeaderB64  = errors.New("token header is not strict base64url")
	errHeaderJSON = errors.New("token header is not a JSON object")
	errAlgNone    = errors.New("unsigned tokens (alg none) are not accepted")
	errTyp        = errors.New("token typ is not at+jwt (RFC 9068)")
	errCrit       = errors.New("token header has crit extensions this server does not understand")
	errNoKid      = errors.New("token header has no kid")
	errSigB64     = errors.New("token signature is not strict base64url")
	errPayloadB64 = errors.New("token payload is not strict base64url")
	errClaimsJSON = errors.New("token claims are not a JSON object of the expected types")
	errNoExp      = errors.New("token has no exp")
	errExpired    = errors.New("token has expired")
	errNotYet     = errors.New("token is not valid yet (nbf)")
	errNoIat      = errors.New("token has no iat")
	errFutureIat  = errors.New("token was issued in the future (iat)")
	errRequired   = errors.New("token lacks sub, client_id or jti (RFC 9068 §2.2)")
	errControl    = errors.New("token has control characters in an identity claim")
	errRevoked    = errors.New("token has been revoked")
	errSignature  = errors.New("signature is invalid")
)

func errTooBig(n, limit int) error {
	return fmt.Errorf("token is %d bytes, the limit is %d", n, limit)
}

func errAlg(alg string) error {
	return fmt.Errorf("alg %s is not accepted", quoteSafe(alg))
}

// parseToken splits and decodes a compact JWS (RFC 7515 §7.1) and its claims.
func parseToken(tok string, maxBytes int, algs map[string]bool) (*parsedToken, error) {
	if len(tok) > maxBytes {
		return nil, errTooBig(len(tok), maxBytes)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		if len(parts) == 5 {
			return nil, errJWE
		}
		return nil, errNotJWS
	}
	// The base64 decoder skips CR and LF, which base64url does not have; one check covers the three parts.
	if strings.ContainsAny(tok, "\r\n") {
		return nil, errLineBreak
	}
	hb, err := strictB64.DecodeString(parts[0])
	if err != nil {
		return nil, errHeaderB64
	}
	var h tokenHeader
	if json.Unmarshal(hb, &h) != nil {
		return nil, errHeaderJSON
	}
	if !algs[h.Alg] {
		if h.Alg == "none" || h.Alg == "" {
			return nil, errAlgNone
		}
		return nil, errAlg(h.Alg)
	}
	// RFC 9068 §4: the resource server must check typ, so an ID token or another JWT cannot pass as an access token.
	if h.Typ != "at+jwt" && h.Typ != "application/at+jwt" {
		return nil, errTyp
	}
	if h.Crit != nil {
		return nil, errCrit
	}
	if h.Kid == "" {
		return nil, errNoKid
	}
	pt := &parsedToken{alg: h.Alg, kid: h.Kid, signingInput: tok[:len(parts[0])+1+len(parts[1])]}
	if pt.sig, err = strictB64.DecodeString(parts[2]); err != nil || len(pt.sig) == 0 {
		return nil, errSigB64
	}
	cb, err := strictB64.DecodeString(parts[1])
	if err != nil {
		return nil, errPayloadB64
	}
	pt.claims = blankClaims
	if json.Unmarshal(cb, &pt.claims) != nil {
		return nil, errClaimsJSON
	}
	return pt, nil
}

// checkClaims applies RFC 9068 §4 validation: issuer, audience (RFC 8707), time window and required claims.
func checkClaims(c *tokenClaims, s *settings, now time.Time) error {
	if c.Iss != s.issuer {
		return s.errIssuer
	}
	if !audienceHas(c.Aud, s.resource) {
		return s.errAudience
	}
	t := float64(now.UnixNano()) / 1e9
	if math.IsNaN(c.Exp) {
		return errNoExp
	}
	if t >= c.Exp+s.skewSec {
		return errExpired
	}
	if t < c.Nbf-s.skewSec {
		return errNotYet
	}
	if math.IsNaN(c.Iat) {
		return errNoIat
	}
	if c.Iat > t+s.skewSec {
		return errFutureIat
	}
	if c.Sub == "" || c.ClientID == "" || c.Jti == "" {
		return errRequired
	}
	if !headerSafe(c.Sub + c.ClientID + c.Scope + c.Username + c.Email) {
		return errControl
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

// controlChars are the bytes a header value cannot carry.
const controlChars = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f" +
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f"

// headerSafe reports whether v can be sent as a header value unchanged. strings.ContainsAny runs compiled under
// Yaegi, where a loop over the bytes would run interpreted.
func headerSafe(v string) bool {
	return !strings.ContainsAny(v, controlChars)
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
