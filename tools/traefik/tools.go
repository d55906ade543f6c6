//go:build tools

// Package tools pins the Traefik command so `go build github.com/traefik/traefik/v3/cmd/traefik` resolves here.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
