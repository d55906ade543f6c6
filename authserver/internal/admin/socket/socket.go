// Package socket carries the operator commands to a running authserver on its embedded store. That store's file is
// held by the server (one process per file), so `authserver clients list` and the others cannot open it; instead the
// server listens on a Unix socket next to the file (PathFor) and runs each command line it is sent with the same
// command line code, on its own service, on the store it serves from: a revocation goes to the same revocation feed
// the edge polls, a backup is a snapshot of the live state.
//
// Who may connect: the socket file is created with mode 0600 (only its owner, the user the server runs as, can
// connect), and on Linux every connection's peer credentials (SO_PEERCRED) are checked as well: a process of
// another user is refused, except root. The socket is never on the network.
//
// The protocol is HTTP/1.1 over the socket, one POST /v2/run per command: the command line in the query (one arg=
// per word), the command's input (if it reads one) as the body, sent with "Expect: 100-continue" so that a command
// refused before it reads its input is answered before the upload. The answer is the command's output as it is
// written, in frames (frameHeader): its stdout and its stderr, and last its exit status. An answer that ends
// without its exit status is an error, never a short output taken for a whole one. The package knows no command:
// a new one is a change of the command line only.
package socket

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// PathFor is the admin socket of the server on the embedded store kept in dataFile: next to it, like its lock file.
func PathFor(dataFile string) string { return dataFile + ".sock" }

// runPath is where the server runs command lines; the version changes when the protocol does, so that either side
// of another version says so (a 404) instead of misreading the other.
const runPath = "/v2/run"

// errNoPeerCredentials: the system cannot tell who is at the other end of a connection.
var errNoPeerCredentials = errors.New("peer credentials not available on this system")

// The answer's frames: a stream byte, the payload's length (uint32, big-endian), the payload.
const (
	frameStdout byte = 1
	frameStderr byte = 2
	frameExit   byte = 3 // the last frame: the exit status, a JSON exitStatus

	frameHeader = 5
	maxFrame    = 64 << 10 // a larger write is cut into frames of this size
)

// exitStatus is how a command ended: no error, or its message and kind.
type exitStatus struct {
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
}

// writeFrame writes one frame of at most maxFrame bytes.
func writeFrame(w io.Writer, stream byte, p []byte) error {
	var h [frameHeader]byte
	h[0] = stream
	binary.BigEndian.PutUint32(h[1:], uint32(len(p)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// kinds maps the wire's kinds to the errors callers test for; the first match decides.
var kinds = []struct {
	name string
	err  error
}{
	{"not_found", service.ErrNotFound},
	{"invalid", service.ErrInvalid},
	{"server_running", service.ErrServerRunning},
	{"not_confirmed", service.ErrNotConfirmed},
	{"unavailable", store.ErrUnavailable},
}

func statusOf(err error) exitStatus {
	if err == nil {
		return exitStatus{}
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return exitStatus{Error: err.Error(), Kind: k.name}
		}
	}
	return exitStatus{Error: err.Error(), Kind: "internal"}
}

// errorOf rebuilds a command's failure from the wire, so errors.Is works as on a local store.
func errorOf(s exitStatus) error {
	if s.Error == "" {
		return nil
	}
	for _, k := range kinds {
		if k.name == s.Kind {
			return &service.Error{Kind: k.err, Msg: s.Error}
		}
	}
	return errors.New(s.Error)
}

// readAnswer copies the answer's output to stdout and stderr as it comes, and returns the command's exit status.
func readAnswer(r io.Reader, stdout, stderr io.Writer) (exitStatus, error) {
	var h [frameHeader]byte
	buf := make([]byte, maxFrame)
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return exitStatus{}, cut(err)
		}
		n := binary.BigEndian.Uint32(h[1:])
		if n > maxFrame {
			return exitStatus{}, fmt.Errorf("read the answer: a frame of %d bytes (at most %d)", n, maxFrame)
		}
		p := buf[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return exitStatus{}, cut(err)
		}
		var dst io.Writer
		switch h[0] {
		case frameStdout:
			dst = stdout
		case frameStderr:
			dst = stderr
		case frameExit:
			var s exitStatus
			if err := json.Unmarshal(p, &s); err != nil {
				return exitStatus{}, fmt.Errorf("read the command's exit status: %w", err)
			}
			return s, nil
		default:
			return exitStatus{}, fmt.Errorf("read the answer: unknown stream %d", h[0])
		}
		if dst != nil {
			if _, err := dst.Write(p); err != nil {
				return exitStatus{}, fmt.Errorf("write the command's output: %w", err)
			}
		}
	}
}

// cut names an answer that ended early.
func cut(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the answer ended before the command's exit status: its output is incomplete")
	}
	return fmt.Errorf("read the answer: %w", err)
}
