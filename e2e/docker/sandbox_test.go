package docker

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The streamproxy image's own binary, built as its Dockerfile builds it (static, without cgo), confines the MCP
// servers it starts when it runs as the image's unprivileged user: Landlock needs no privilege. (Docker's default
// seccomp profile allows the three landlock_* system calls; no engine here applies it.)
func TestStreamproxyImageSandboxAsItsUser(t *testing.T) {
	root := repoRoot(t)
	warmModuleCache(t, root)
	dockerfile := filepath.Join(root, "streamproxy", "Dockerfile")
	work := t.TempDir()
	if err := Check(context.Background(), Options{Context: root, Dockerfile: dockerfile, WorkDir: work, Logf: t.Logf}); err != nil {
		t.Fatal(err)
	}
	built, err := os.ReadFile(filepath.Join(work, "stage0", "out", "streamproxy"))
	if err != nil {
		t.Fatalf("the build stage's binary: %v", err)
	}
	// Where the image's user can run it.
	dir, err := os.MkdirTemp("", "streamproxy-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "streamproxy")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, built, 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "--sandbox", "required", "--listen", "127.0.0.1:0", "--log-format", "text", "--user-header", "",
		"--", "true")
	if os.Geteuid() == 0 {
		uid := imageUID(t, dockerfile)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var seen []string
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("streamproxy --sandbox required exited as the image's user:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, line)
			if strings.Contains(line, "confined by Landlock") {
				t.Log(line)
				return
			}
		case <-deadline:
			t.Fatalf("no word of the sandbox from streamproxy:\n%s", strings.Join(seen, "\n"))
		}
	}
}

// imageUID is the uid the Dockerfile's last USER has, from the useradd line that creates it.
func imageUID(t *testing.T, dockerfile string) uint32 {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(string(data), -1)
	if len(users) == 0 {
		t.Fatal("the image has no USER")
	}
	name := users[len(users)-1][1]
	m := regexp.MustCompile(`useradd[^\n]*--uid (\d+)[^\n]* ` + regexp.QuoteMeta(name) + `\b`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatalf("no useradd --uid for the image's user %s", name)
	}
	uid, err := strconv.ParseUint(m[1], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(uid)
}
