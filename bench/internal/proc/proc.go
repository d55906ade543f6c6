// Package proc reads a process's resident memory from /proc, for the per-session and per-user memory figures.
package proc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RSS returns the resident set size of pid in bytes (VmRSS of /proc/<pid>/status). It is the process's own memory:
// children are separate processes and are not counted.
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest) // "123456 kB"
			if len(fields) == 0 {
				break
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS of process %d: %w", pid, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// Children returns the pids whose parent is pid. Each thread lists the children it started, so all are read: a Go
// program starts its children from any of its threads.
func Children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// TreeRSS returns the resident set sizes of pid and all its descendants, summed, and how many processes that is. A
// page several of them share (a runtime's libraries) counts in each.
func TreeRSS(pid int) (int64, int, error) {
	total, n := int64(0), 0
	pending := []int{pid}
	for len(pending) > 0 {
		p := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		rss, err := RSS(p)
		if err != nil {
			if p == pid {
				return 0, 0, err
			}
			continue // a child that ended meanwhile
		}
		total += rss
		n++
		pending = append(pending, Children(p)...)
	}
	return total, n, nil
}
