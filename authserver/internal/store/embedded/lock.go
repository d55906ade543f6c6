package embedded

import "errors"

// ErrInUse is returned by Open when another process holds the store's file: a running authserver, or an operator
// command. Callers test it with errors.Is (the operator commands then go through the server's admin socket).
var ErrInUse = errors.New("in use by another process")
