// Package docker checks Dockerfiles without a Docker engine. It reads a Dockerfile with BuildKit's own parser, lays
// out what each stage's COPY and ADD lines put in the image (the build context filtered by .dockerignore as the Docker
// client filters it, copied with BuildKit's copy semantics, WORKDIR, ARG and ENV honoured), runs the stage's Go
// commands in that layout offline against this machine's module cache, and checks each Go image's version against
// go.mod. Other RUN lines and the contents of other base images are not modelled: a stage that would need them to
// build is refused, never passed.
package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	fscopy "github.com/tonistiigi/fsutil/copy"
)

// Options name one build: docker build -f Dockerfile Context.
type Options struct {
	Context    string
	Dockerfile string
	WorkDir    string               // an empty directory for the stages' file systems
	Logf       func(string, ...any) // each step, as it is replayed
}

// stage is one FROM: its file system as far as the Dockerfile puts files in it.
type stage struct {
	name, base string
	root       string // its file system on this machine
	workdir    string // in the image
	label      string
	env        []string // KEY=value from the base image (as far as known), ARG and ENV
	goImage    bool     // the official Go image, golang:<tag>
	goVersion  string   // the oldest Go its tag can stand for; "" if the tag names none
	ranGo      bool
}

type replay struct {
	o        Options
	lex      *shell.Lex
	meta     []string // ARGs before the first FROM
	stages   []*stage
	problems []error // what is wrong without stopping the build (a Go image older than go.mod)
	seen     map[string]bool
	exclude  []string // .dockerignore's patterns
	ignored  string   // which .dockerignore, for messages
	host     goEnv
	contexts int
}

// Check replays the Dockerfile and returns every problem found: the static ones (Go versions) and the first step
// that fails, where docker build would stop.
func Check(ctx context.Context, o Options) error {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	data, err := os.ReadFile(o.Dockerfile)
	if err != nil {
		return err
	}
	parsed, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: %w", o.Dockerfile, err)
	}
	stages, metaArgs, err := instructions.Parse(parsed.AST, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", o.Dockerfile, err)
	}
	r := &replay{o: o, lex: shell.NewLex(parsed.EscapeToken), seen: map[string]bool{}, ignored: "which has no .dockerignore"}
	ignoreFile, exclude, err := ignorePatterns(o.Context, o.Dockerfile)
	if err != nil {
		return err
	}
	if ignoreFile != "" {
		r.exclude, r.ignored = exclude, "less what "+ignoreFile+" excludes"
	}
	for _, a := range metaArgs {
		if err := a.Expand(r.expander(r.meta)); err != nil {
			return err
		}
		for _, kv := range a.Args {
			if kv.Value != nil {
				r.meta = setEnv(r.meta, kv.Key, *kv.Value)
			}
		}
	}
	for i := range stages {
		if err := r.stage(ctx, i, &stages[i]); err != nil {
			return errors.Join(append(r.problems, err)...)
		}
	}
	return errors.Join(r.problems...)
}

func (r *replay) problem(err error) {
	if !r.seen[err.Error()] {
		r.seen[err.Error()] = true
		r.problems = append(r.problems, err)
	}
}

func (r *replay) expander(env []string) instructions.SingleWordExpander {
	return func(word string) (string, error) {
		res, _, err := r.lex.ProcessWord(word, shell.EnvsFromSlice(env))
		return res, err
	}
}

// earlier finds a stage by name or index, as COPY --from and FROM do.
func (r *replay) earlier(name string) *stage {
	if i, err := strconv.Atoi(name); err == nil && i >= 0 && i < len(r.stages) {
		return r.stages[i]
	}
	for _, s := range r.stages {
		if s.name != "" && strings.EqualFold(s.name, name) {
			return s
		}
	}
	return nil
}

func (r *replay) stage(ctx context.Context, i int, st *instructions.Stage) error {
	base, err := r.expander(r.meta)(st.BaseName)
	if err != nil {
		return err
	}
	label := fmt.Sprintf("stage %d (FROM %s)", i, base)
	s := &stage{name: st.Name, base: base, label: label, root: filepath.Join(r.o.WorkDir, fmt.Sprintf("stage%d", i)), workdir: "/"}
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return err
	}
	if parent := r.earlier(base); parent != nil {
		// FROM an earlier stage starts from its file system and settings.
		if err := fscopy.Copy(ctx, parent.root, "/", s.root, "/", fscopy.WithCopyInfo(fscopy.CopyInfo{CopyDirContents: true})); err != nil {
			return err
		}
		s.workdir, s.env = parent.workdir, append([]string(nil), parent.env...)
		s.goImage, s.goVersion = parent.goImage, parent.goVersion
	} else {
		isGo, v, err := goImageVersion(base)
		if err != nil {
			r.problem(fmt.Errorf("%s: %w", label, err))
		}
		if isGo {
			// What the official Go image sets that a Dockerfile may rely on.
			s.goImage, s.goVersion, s.workdir, s.env = true, v, "/go", []string{"GOPATH=/go", "GOTOOLCHAIN=local"}
		}
	}
	r.stages = append(r.stages, s)
	r.o.Logf("%s", label)
	for _, cmd := range st.Commands {
		if e, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
			if err := e.Expand(r.expander(s.env)); err != nil {
				return fmt.Errorf("%s: %s: %w", label, cmd, err)
			}
		}
		if err := r.command(ctx, s, cmd); err != nil {
			return fmt.Errorf("%s: %s: %w", label, cmd, err)
		}
	}
	if s.goVersion != "" && !s.ranGo {
		// A Go image that runs no Go command is still held to the module it sits next to.
		if _, err := os.Stat(filepath.Join(r.o.Context, "go.mod")); err == nil {
			if err := checkGoMod(base, s.goVersion, filepath.Join(r.o.Context, "go.mod"), "go.mod of the build context"); err != nil {
				r.problem(fmt.Errorf("%s: %w", label, err))
			}
		}
	}
	return nil
}

func (r *replay) command(ctx context.Context, s *stage, cmd instructions.Command) error {
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			switch {
			case kv.Value != nil:
				s.env = setEnv(s.env, kv.Key, *kv.Value)
			case hasEnv(r.meta, kv.Key):
				// ARG without a value inside a stage takes the one declared before FROM.
				s.env = setEnv(s.env, kv.Key, getEnv(r.meta, kv.Key))
			}
		}
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			s.env = setEnv(s.env, kv.Key, kv.Value)
		}
	case *instructions.WorkdirCommand:
		s.workdir = strings.TrimSuffix(s.imagePath(c.Path), "/")
		if s.workdir == "" {
			s.workdir = "/"
		}
		r.o.Logf("  WORKDIR %s", s.workdir)
		return os.MkdirAll(filepath.Join(s.root, s.workdir), 0o755)
	case *instructions.CopyCommand:
		if c.Parents || len(c.ExcludePatterns) > 0 || len(c.SourceContents) > 0 {
			return errors.New("COPY --parents, --exclude and here-documents are not modelled by this test: extend it first")
		}
		if c.From == "" {
			return r.copyFromContext(ctx, s, c.SourcePaths, c.DestPath)
		}
		if from := r.earlier(c.From); from != nil {
			return r.copyFrom(ctx, s, from.root, c.SourcePaths, c.DestPath, "stage "+c.From)
		}
		// Another image's files are unknown here; nothing this test builds can depend on them (a Go command in this
		// stage would run without them and fail).
		r.o.Logf("  COPY --from=%s: another image's files, not modelled", c.From)
	case *instructions.AddCommand:
		for _, src := range c.SourcePaths {
			if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") || isArchive(src) {
				return fmt.Errorf("ADD %s (a URL, Git repository or archive that ADD unpacks) is not modelled by this test: use COPY or extend it", src)
			}
		}
		return r.copyFromContext(ctx, s, c.SourcePaths, c.DestPath)
	case *instructions.RunCommand:
		return r.run(ctx, s, c)
	}
	return nil
}

func isArchive(p string) bool {
	for _, ext := range []string{".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

// copyFromContext sends the part of the context these sources name, filtered by .dockerignore, and copies it in.
func (r *replay) copyFromContext(ctx context.Context, s *stage, sources []string, dest string) error {
	var include []string
	for _, src := range sources {
		p := strings.TrimPrefix(contextPath(src), "/")
		if p == "" {
			include = nil // the whole context
			break
		}
		include = append(include, p)
	}
	r.contexts++
	dir := filepath.Join(r.o.WorkDir, fmt.Sprintf("context%d", r.contexts))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := sendContext(ctx, r.o.Context, include, r.exclude, dir); err != nil {
		return err
	}
	return r.copyFrom(ctx, s, dir, sources, dest, "the build context (after .dockerignore)")
}

// copyFrom copies with BuildKit's copier and the options BuildKit gives it for COPY: wildcards (none matching is not
// an error), a directory's contents rather than the directory, symbolic links followed.
func (r *replay) copyFrom(ctx context.Context, s *stage, srcRoot string, sources []string, dest, where string) error {
	destPath := s.imagePath(dest)
	for _, src := range sources {
		src = contextPath(src)
		matches, err := fscopy.ResolveWildcards(srcRoot, src, true)
		if err != nil {
			return err
		}
		for _, m := range matches {
			if _, err := os.Lstat(filepath.Join(srcRoot, m)); os.IsNotExist(err) {
				return fmt.Errorf("%s: not found in %s", src, where)
			}
			err := fscopy.Copy(ctx, srcRoot, m, s.root, destPath, fscopy.WithCopyInfo(fscopy.CopyInfo{CopyDirContents: true, FollowLinks: true}))
			if err != nil {
				return err
			}
		}
		r.o.Logf("  COPY %s (%d match) -> %s", src, len(matches), destPath)
	}
	return nil
}

// imagePath resolves a path in the image against WORKDIR, keeping a trailing slash (it makes COPY's destination a
// directory).
func (s *stage) imagePath(p string) string {
	dir := p == "" || p == "." || strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.")
	if !path.IsAbs(p) {
		p = path.Join(s.workdir, p)
	}
	p = path.Clean(p)
	if dir && p != "/" {
		p += "/"
	}
	return p
}

func setEnv(env []string, k, v string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if key, _, _ := strings.Cut(kv, "="); key != k {
			out = append(out, kv)
		}
	}
	return append(out, k+"="+v)
}

func hasEnv(env []string, k string) bool {
	for _, kv := range env {
		if key, _, _ := strings.Cut(kv, "="); key == k {
			return true
		}
	}
	return false
}

func getEnv(env []string, k string) string {
	for _, kv := range env {
		if key, v, _ := strings.Cut(kv, "="); key == k {
			return v
		}
	}
	return ""
}
