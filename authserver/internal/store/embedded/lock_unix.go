//go:build unix

package embedded

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockFile takes an exclusive lock on path+".lock", so that a second process opening the same store fails instead
// of silently interleaving its writes, and writes me into it. The lock is released when the returned file is closed
// (or the process dies). The authserver waits up to commandWait for an operator's command holding the lock;
// waiting is called once when it starts to.
func lockFile(path string, me holder, waiting func(other holder)) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for told := false; ; {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		b := make([]byte, 64)
		n, _ := f.ReadAt(b, 0)
		other := parseHolder(b[:n])
		// A holder that has just taken the lock may not have written its line yet.
		unsure := other.pid == 0 && time.Since(start) < 200*time.Millisecond
		waits := me.server && (other.pid != 0 && !other.server || unsure)
		if !waits || time.Since(start) > commandWait {
			_ = f.Close()
			return nil, fmt.Errorf("%s is %w: %s (the embedded store is single-node; use Redis to run several authservers)",
				path, ErrInUse, other)
		}
		if !told && !unsure {
			waiting(other)
			told = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Only what others are told depends on this line: the lock holds without it.
	if f.Truncate(0) == nil {
		_, _ = f.WriteAt([]byte(me.line()), 0)
	}
	return f, nil
}
