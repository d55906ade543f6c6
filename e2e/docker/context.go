package docker

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/moby/patternmatcher/ignorefile"
	"github.com/tonistiigi/fsutil"
)

// ignorePatterns reads the exclusions that docker build applies to the context: <Dockerfile>.dockerignore next to the
// Dockerfile if there is one, else .dockerignore at the context root; none without either.
func ignorePatterns(contextDir, dockerfile string) (file string, patterns []string, err error) {
	for _, candidate := range []string{dockerfile + ".dockerignore", filepath.Join(contextDir, ".dockerignore")} {
		f, err := os.Open(candidate)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		defer f.Close()
		patterns, err := ignorefile.ReadAll(f)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", candidate, err)
		}
		return candidate, patterns, nil
	}
	return "", nil, nil
}

// sendContext writes into dst the files of contextDir that docker build would send: fsutil's walk with the
// .dockerignore patterns, which is what the Docker client uses, limited to the paths the COPY and ADD lines name
// (BuildKit sends no more either; an empty include list means everything).
func sendContext(ctx context.Context, contextDir string, include, exclude []string, dst string) error {
	opt := &fsutil.FilterOpt{IncludePatterns: include, ExcludePatterns: exclude}
	return fsutil.Walk(ctx, contextDir, opt, func(rel string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		switch {
		case info.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(filepath.Join(contextDir, rel))
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			// Copied, not linked: a RUN line may change its copy, never the repository's file.
			return copyFile(filepath.Join(contextDir, rel), target, info.Mode().Perm())
		}
		return nil
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// contextPath is a COPY or ADD source as a path in the context: the context is the root, so "/x", "x" and "./x" are one
// path, and ".." cannot leave it.
func contextPath(src string) string {
	return path.Join("/", filepath.ToSlash(src))
}
