package embedded

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInUse is returned by Open when another process holds the store's file: a running authserver, or an operator
// command. Callers test it with errors.Is (the operator commands then go through the server's admin socket).
var ErrInUse = errors.New("in use by another process")

// commandWait is how long the authserver, starting, waits for an operator's command that holds the file (a backup
// started while the server was down) to end: such a command takes seconds, and a supervisor restarting the server
// meanwhile would otherwise see it fail.
const commandWait = time.Minute

// holder is who holds the store's lock, as written in the lock file: the authserver, or an operator's command.
type holder struct {
	server bool
	pid    int
}

func (h holder) String() string {
	if h.pid == 0 {
		return "a process that did not say what it is (an older authserver?)"
	}
	if h.server {
		return fmt.Sprintf("the authserver (pid %d)", h.pid)
	}
	return fmt.Sprintf("an operator's command (pid %d)", h.pid)
}

// line is what h writes into the lock file.
func (h holder) line() string {
	role := "command"
	if h.server {
		role = "authserver"
	}
	return role + " " + strconv.Itoa(h.pid) + "\n"
}

// parseHolder reads a lock file's line; the zero holder when it says nothing readable.
func parseHolder(b []byte) holder {
	role, pid, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	n, err := strconv.Atoi(pid)
	if !ok || err != nil || n <= 0 || (role != "authserver" && role != "command") {
		return holder{}
	}
	return holder{server: role == "authserver", pid: n}
}
