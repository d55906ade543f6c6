package oauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// AccessClaims are the claims of an access token (RFC 9068).
type AccessClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Username string `json:"username,omitempty"`
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
	// Groups are the user's declared groups read at login (login.Service.KeepGroups); absent when none.
	Groups []string `json:"groups,omitempty"`
}

// signAccess signs an access token (RFC 9068) for user and returns it with its jti.
func (s *Server) signAccess(ctx context.Context, clientID string, u store.User, scope, resource string, now, exp time.Time) (string, string, error) {
	kid, key, err := s.keys.Signer(ctx)
	if err != nil {
		return "", "", err
	}
	jti := randomToken(18)
	// A map, not AccessClaims, so that aud is written as one string (RFC 9068 §2.2; golang-jwt writes a list).
	claims := jwt.MapClaims{
		"iss": s.cfg.Issuer, "sub": u.ID, "aud": resource, "jti": jti, "client_id": clientID, "scope": scope,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(), "username": u.Login,
	}
	if u.Name != "" {
		claims["name"] = u.Name
	}
	if u.Email != "" {
		claims["email"] = u.Email
	}
	if len(u.Groups) > 0 {
		claims["groups"] = u.Groups
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["typ"] = "at+jwt"
	t.Header["kid"] = kid
	signed, err := t.SignedString(key)
	if err != nil {
		return "", "", fmt.Errorf("sign access token: %w", err)
	}
	return signed, jti, nil
}

// parseAccess checks an access token this server issued: signature, alg, typ, issuer and lifetime.
func (s *Server) parseAccess(ctx context.Context, raw string) (*AccessClaims, error) {
	claims := &AccessClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
			return nil, errors.New("not an access token (typ)")
		}
		kid, _ := t.Header["kid"].(string)
		return s.keys.PublicKey(ctx, kid)
	}, jwt.WithValidMethods([]string{keys.Alg}), jwt.WithIssuer(s.cfg.Issuer), jwt.WithExpirationRequired(),
		jwt.WithLeeway(30*time.Second))
	if err != nil {
		return nil, err
	}
	return claims, nil
}
