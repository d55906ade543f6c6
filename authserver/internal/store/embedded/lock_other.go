//go:build !unix

package embedded

import "os"

// lockFile is a no-op where flock is missing; running two processes on one file is then up to the operator.
func lockFile(path string, _ holder, _ func(holder)) (*os.File, error) {
	return os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
}
