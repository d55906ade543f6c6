//go:build !linux

package socket

import (
	"net"
)

// peerUID is not implemented here: the socket file's mode (0600) alone keeps other users out.
func peerUID(net.Conn) (int, error) { return -1, errNoPeerCredentials }
