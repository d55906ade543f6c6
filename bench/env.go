package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// env is what one benchmark section started: the cleanups that stop it when the section ends, last first.
type env struct {
	name     string
	cleanups []func()
	failed   bool // the section ended with an error: the processes it started log their output
}

// onEnd runs f when the section ends.
func (e *env) onEnd(f func()) { e.cleanups = append(e.cleanups, f) }

// tempDir is a directory removed when the section ends.
func (e *env) tempDir() (string, error) {
	d, err := os.MkdirTemp("", "gateway-bench-")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	e.onEnd(func() { _ = os.RemoveAll(d) })
	return d, nil
}

// start runs a program until the section ends.
func (e *env) start(name string, cmd *exec.Cmd) (*testenv.Process, error) {
	p, err := testenv.StartProcess(name, cmd)
	if err != nil {
		return nil, err
	}
	e.onEnd(func() {
		p.Stop()
		if e.failed {
			slog.Info("output of "+name, "section", e.name, "output", p.Output())
		}
	})
	return p, nil
}

// startRedis starts a private redis-server until the section ends.
func (e *env) startRedis() (*testenv.Redis, error) {
	dir, err := e.tempDir()
	if err != nil {
		return nil, err
	}
	r, err := testenv.StartRedisIn(dir)
	if err != nil {
		return nil, err
	}
	e.onEnd(r.Stop)
	return r, nil
}

// errSkipped marks a section that could not run because a prerequisite is missing.
var errSkipped = errors.New("skipped")

// runSection runs fn with a fresh env and then every cleanup it registered. A missing prerequisite (testenv's
// ErrMissing) skips the section.
func runSection(name string, fn func(e *env) error) error {
	e := &env{name: name}
	err := fn(e)
	if errors.Is(err, testenv.ErrMissing) && !errors.Is(err, errSkipped) {
		err = fmt.Errorf("%w: %w", errSkipped, err)
	}
	e.failed = err != nil && !errors.Is(err, errSkipped)
	for _, f := range slices.Backward(e.cleanups) {
		f()
	}
	return err
}
