package docker

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/tonistiigi/fsutil"
)

// The repository's Dockerfiles are built from its root (compose.yaml's build contexts; e2e checks those).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// dockerfiles finds every Dockerfile of the repository, fixtures (testdata) and installed or generated trees aside.
func dockerfiles(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "plugins-local") {
				return filepath.SkipDir
			}
			return nil
		}
		if name == "Dockerfile" || strings.HasSuffix(name, ".Dockerfile") || (strings.HasPrefix(name, "Dockerfile.") && !strings.HasSuffix(name, ".dockerignore")) {
			rel, _ := filepath.Rel(root, p)
			found = append(found, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

var warm sync.Once

// warmModuleCache fetches every module of the repository's go.mod into the module cache (through the configured
// proxy, a no-op when they are there), so that the replayed builds can run offline. It works on a copy of go.mod and
// go.sum: the repository's are never touched.
func warmModuleCache(t *testing.T, root string) {
	t.Helper()
	warm.Do(func() {
		dir := t.TempDir()
		for _, f := range []string{"go.mod", "go.sum"} {
			if err := copyFile(filepath.Join(root, f), filepath.Join(dir, f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("go", "mod", "download")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go mod download (filling the module cache the offline builds use): %v\n%s", err, out)
		}
	})
}

// Every Dockerfile of the repository builds: what its COPY lines lay out is enough for its Go commands, and its Go
// image is recent enough for go.mod.
func TestRepositoryDockerfiles(t *testing.T) {
	root := repoRoot(t)
	files := dockerfiles(t, root)
	for _, want := range []string{"authserver/Dockerfile", "streamproxy/Dockerfile"} {
		if !slices.Contains(files, want) {
			t.Fatalf("found Dockerfiles %v, not %s", files, want)
		}
	}
	warmModuleCache(t, root)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if err := check(t, root, filepath.Join(root, f)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Dockerfiles that copied too little and pinned an old Go (as ours once did) are refused, for both reasons they failed under Docker.
func TestRepositoryDockerfilesBefore(t *testing.T) {
	root := repoRoot(t)
	warmModuleCache(t, root)
	for _, f := range []string{"authserver", "streamproxy"} {
		t.Run(f, func(t *testing.T) {
			err := check(t, root, filepath.Join("testdata", "before", f+".Dockerfile"))
			requireRefusal(t, err, "go1.25.0", "go 1.26.0", "internal/observe")
		})
	}
}

// The build context holds what the images build from, and no secret (.env), repository history or bulk.
func TestRepositoryBuildContext(t *testing.T) {
	root := repoRoot(t)
	ignore, patterns, err := ignorePatterns(root, filepath.Join(root, "authserver", "Dockerfile"))
	if err != nil || ignore != filepath.Join(root, ".dockerignore") {
		t.Fatalf("want the repository's .dockerignore, got %q: %v", ignore, err)
	}
	var files []string
	var size int64
	err = fsutil.Walk(context.Background(), root, &fsutil.FilterOpt{ExcludePatterns: patterns},
		func(p string, info fs.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				files = append(files, p)
				size += info.Size()
			}
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go.mod", "go.sum", "authserver/main.go", "streamproxy/main.go", "internal/observe/observe.go"} {
		if !slices.Contains(files, want) {
			t.Errorf("the context lacks %s", want)
		}
	}
	for _, f := range files {
		if f == ".env" || strings.HasPrefix(f, ".git/") || strings.Contains(f, "node_modules/") ||
			strings.HasPrefix(f, ".cache/") || strings.HasSuffix(f, "_test.go") || strings.Contains(f, "/testdata/") {
			t.Errorf("the context holds %s", f)
		}
	}
	t.Logf("build context: %d files, %d KiB", len(files), size/1024)
	if size > 4<<20 {
		t.Errorf("build context is %d KiB: keep it to what the images build from", size/1024)
	}
}

// The images run as an unprivileged user, and the services' images check their own health.
func TestRepositoryImagesRunAsNonRoot(t *testing.T) {
	root := repoRoot(t)
	for _, f := range dockerfiles(t, root) {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := parser.Parse(strings.NewReader(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		stages, _, err := instructions.Parse(parsed.AST, nil)
		if err != nil {
			t.Fatal(err)
		}
		user, health := "root", false
		for _, c := range imageCommands(stages) {
			switch c := c.(type) {
			case *instructions.UserCommand:
				user = c.User
			case *instructions.HealthCheckCommand:
				health = true
			}
		}
		if name, _, _ := strings.Cut(user, ":"); name == "root" || name == "0" {
			t.Errorf("%s: the image runs as root", f)
		}
		if (f == "authserver/Dockerfile" || f == "streamproxy/Dockerfile") && !health {
			t.Errorf("%s: no HEALTHCHECK", f)
		}
	}
}

// imageCommands are the commands that make the image docker build tags: the last stage's, after those of the
// earlier stages it is built FROM.
func imageCommands(stages []instructions.Stage) []instructions.Command {
	last := stages[len(stages)-1]
	for i := len(stages) - 2; i >= 0; i-- {
		if stages[i].Name != "" && strings.EqualFold(stages[i].Name, last.BaseName) {
			return append(imageCommands(stages[:i+1]), last.Commands...)
		}
	}
	return last.Commands
}

func requireRefusal(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("passed a Dockerfile that docker build would refuse")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the refusal does not say %q:\n%v", w, err)
		}
	}
	t.Logf("refused as it should be:\n%v", err)
}
