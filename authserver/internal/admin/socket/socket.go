// Package socket carries the operator commands to a running authserver on its embedded store. That store's file is
// held by the server (one process per file), so `authserver clients list` and the others cannot open it; instead the
// server listens on a Unix socket next to the file (PathFor) and runs each command with its own service.Local, on
// the store it serves from: a revocation goes to the same revocation feed the edge polls, a backup is a snapshot of
// the live state.
//
// Who may connect: the socket file is created with mode 0600 (only its owner, the user the server runs as, can
// connect), and on Linux every connection's peer credentials (SO_PEERCRED) are checked as well: a process of
// another user is refused, except root. The socket is never on the network.
//
// The protocol is HTTP/1.1 over the socket, one POST per command: /v1/<command> with the arguments as a JSON
// object, answered with the result as JSON; a failure is {"error": message, "kind": kind} with a status that
// matches the kind. /v1/backup streams the dump and ends with a trailer saying whether it is complete; /v1/restore
// sends the dump with "Expect: 100-continue", so a refusal is answered before the upload.
package socket

import (
	"errors"
	"net/http"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// PathFor is the admin socket of the server on the embedded store kept in dataFile: next to it, like its lock file.
func PathFor(dataFile string) string { return dataFile + ".sock" }

// Command names: the paths /v1/<name>.
const (
	cmdListClients  = "clients.list"
	cmdGetClient    = "clients.show"
	cmdDeleteClient = "clients.delete"
	cmdRevokeClient = "clients.revoke"
	cmdRevokeUser   = "users.revoke"
	cmdListGrants   = "grants.list"
	cmdPurge        = "purge"
	cmdPurgeClients = "clients.purge"
	cmdBackup       = "backup"
	cmdRestore      = "restore"
	cmdRotateKeys   = "keys.rotate"
)

// errNoPeerCredentials: the system cannot tell who is at the other end of a connection.
var errNoPeerCredentials = errors.New("peer credentials not available on this system")

// backupStatus is the trailer that ends a backup: "ok", or what went wrong after the dump had started.
const backupStatus = "Admin-Backup-Status"

// Arguments and results on the wire.
type (
	idArgs struct {
		ID string `json:"id"`
	}
	countOut struct {
		Count int `json:"count"`
	}
	rotateArg struct {
		ActivateAfter time.Duration `json:"activate_after"`
	}
)

// wireError is a failed command on the wire.
type wireError struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

// kinds maps the wire's kinds to the errors callers test for; the first match decides.
var kinds = []struct {
	name   string
	err    error
	status int
}{
	{"not_found", service.ErrNotFound, http.StatusNotFound},
	{"invalid", service.ErrInvalid, http.StatusBadRequest},
	{"server_running", service.ErrServerRunning, http.StatusConflict},
	{"unavailable", store.ErrUnavailable, http.StatusServiceUnavailable},
}

func kindOf(err error) (string, int) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name, k.status
		}
	}
	return "internal", http.StatusInternalServerError
}

// errorOf rebuilds a command's failure from the wire, so errors.Is works as on a local store.
func errorOf(w wireError) error {
	for _, k := range kinds {
		if k.name == w.Kind {
			return &service.Error{Kind: k.err, Msg: w.Error}
		}
	}
	return errors.New(w.Error)
}
