package policy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// Source is a policy file kept current: Current is the last policy that loaded; a change to the file that does not
// load leaves it in force, and the log says why. Sessions and workers never notice a reload: each request asks for
// the policy in force when it arrives.
type Source struct {
	path    string
	log     *slog.Logger
	current atomic.Pointer[Policy]
	loaded  []byte // the content of the file as last read (loaded or refused), to notice a change
	reloads func(ok bool)
}

// Open loads a policy file; a file that does not load is an error, which names the rule and the line at fault.
// reloaded, if set, is told of each later reload and whether it succeeded.
func Open(file string, log *slog.Logger, reloaded func(ok bool)) (*Source, error) {
	if log == nil {
		log = slog.Default()
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p, err := Parse(data, log)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, err)
	}
	s := &Source{path: file, log: log, loaded: data, reloads: reloaded}
	s.current.Store(p)
	return s, nil
}

// Current is the policy in force.
func (s *Source) Current() *Policy { return s.current.Load() }

// Watch reads the file every interval until ctx ends and loads it when its content changed. Reading the content,
// rather than trusting its modification time, also catches an edit within the same second and a file replaced by
// a rename (as editors and Kubernetes ConfigMaps do).
func (s *Source) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Reload()
		}
	}
}

// Reload reads the file once and loads it if its content changed since the last read.
func (s *Source) Reload() {
	data, err := os.ReadFile(s.path)
	if err != nil {
		if s.loaded != nil { // said once, not at every poll
			s.log.Error("policy file unreadable: the last good policy stays in force", "file", s.path, "err", err)
			s.report(false)
		}
		s.loaded = nil
		return
	}
	if bytes.Equal(data, s.loaded) {
		return
	}
	s.loaded = data
	p, err := Parse(data, s.log)
	if err != nil {
		s.log.Error("policy file changed but does not load: the last good policy stays in force", "file", s.path, "err", err)
		s.report(false)
		return
	}
	p.keepBuckets(s.current.Load())
	s.current.Store(p)
	s.log.Info("policy reloaded", "file", s.path, "rules", len(p.rules), "limits", len(p.limits))
	s.report(true)
}

func (s *Source) report(ok bool) {
	if s.reloads != nil {
		s.reloads(ok)
	}
}
