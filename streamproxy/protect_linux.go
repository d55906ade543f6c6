package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// protectFromChildren marks the proxy non-dumpable: processes of its own account, its MCP servers among them, can
// then neither read its environment and memory (/proc/<pid>/environ, /proc/<pid>/mem: the secret, every user's
// traffic) nor trace it. The kernel lets a process with CAP_SYS_PTRACE (root's) past this, hence run's warning.
func protectFromChildren() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}
