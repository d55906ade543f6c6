package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// SmallDisk mounts a tmpfs of size bytes for the test (it needs root), removed when the test ends: a filesystem of
// its own that a test can fill.
func SmallDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root (a small tmpfs for the full-disk fault)", "run the tests as root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs at %s: %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}
