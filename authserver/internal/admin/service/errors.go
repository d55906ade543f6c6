package service

import (
	"errors"
	"fmt"
)

// Kinds of failure the commands report, also through the admin socket; callers test them with errors.Is.
var (
	// ErrNotFound: the client named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: an argument is malformed (e.g. a user id that is not a GitHub numeric id).
	ErrInvalid = errors.New("invalid argument")
	// ErrServerRunning: the command needs the server stopped (restore, while a server serves the embedded store).
	ErrServerRunning = errors.New("the authserver is running")
	// ErrNotConfirmed: a destructive command was run without confirmation (--yes).
	ErrNotConfirmed = errors.New("refusing a destructive action without --yes")
)

// Error is a failure of one of the kinds above, with the message the operator reads. The admin socket carries
// both, so a command fails the same way whichever way it reached the store.
type Error struct {
	Kind error // one of the kinds above (or, from the admin socket, store.ErrUnavailable)
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func failure(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
