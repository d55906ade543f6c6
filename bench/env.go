package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
)

// env lets the suite use internal/testenv (written for tests) from a program: it implements the few testing.TB
// methods testenv calls. Fatalf and Skipf end the current benchmark section by panicking with errAbort or errSkip,
// which runSection recovers. The embedded testing.TB is nil; calling any other method would panic, which would be
// a bug in this file.
type env struct {
	testing.TB
	name     string
	cleanups []func()
	failed   bool
}

type abortError struct{ err error }
type skipError struct{ reason string }

func (e *env) Helper()      {}
func (e *env) Name() string { return e.name }
func (e *env) Failed() bool { return e.failed }
func (e *env) Fatalf(format string, args ...any) {
	e.failed = true
	panic(abortError{fmt.Errorf(format, args...)})
}
func (e *env) Fatal(args ...any) { e.Fatalf("%s", fmt.Sprint(args...)) }
func (e *env) Skipf(format string, args ...any) {
	panic(skipError{fmt.Sprintf(format, args...)})
}
func (e *env) Logf(format string, args ...any) {
	slog.Info(fmt.Sprintf(format, args...), "section", e.name)
}
func (e *env) Cleanup(f func()) { e.cleanups = append(e.cleanups, f) }
func (e *env) TempDir() string {
	d, err := os.MkdirTemp("", "gateway-bench-")
	if err != nil {
		e.Fatalf("temp dir: %v", err)
	}
	e.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// check ends the section with err (wrapped with what) when err is not nil.
func (e *env) check(err error, what string) {
	if err != nil {
		e.Fatalf("%s: %v", what, err)
	}
}

func (e *env) close() {
	for _, f := range slices.Backward(e.cleanups) {
		f()
	}
	e.cleanups = nil
}

// errSkipped marks a section that could not run because a prerequisite is missing.
var errSkipped = errors.New("skipped")

// runSection runs fn with a fresh env, turning Fatalf and Skipf into an error and running every cleanup.
func runSection(name string, fn func(e *env)) (err error) {
	e := &env{name: name}
	defer e.close()
	defer func() {
		switch r := recover().(type) {
		case nil:
		case abortError:
			err = r.err
		case skipError:
			err = fmt.Errorf("%w: %s", errSkipped, r.reason)
		default:
			panic(r)
		}
	}()
	fn(e)
	return nil
}
