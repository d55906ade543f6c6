package docker

import (
	"fmt"
	"go/version"
	"os"
	"regexp"

	"github.com/distribution/reference"
	"golang.org/x/mod/modfile"
)

// goImageTag is a tag of the official Go image: 1.26, 1.26.2, 1.27rc1, each optionally followed by a variant such as
// -alpine or -bookworm.
var goImageTag = regexp.MustCompile(`^(1\.\d+)(\.\d+|(?:rc|beta)\d+)?(?:-[a-z0-9.]+)?$`)

// goImageVersion tells whether image is the official Go image and, if so, the oldest Go release its tag can stand for:
// go1.26.0 for golang:1.26-alpine, whose tag moves along the 1.26 patch releases.
func goImageVersion(image string) (isGo bool, goVersion string, err error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return false, "", fmt.Errorf("image %q: %w", image, err)
	}
	if reference.FamiliarName(named) != "golang" {
		return false, "", nil
	}
	tagged, ok := named.(reference.Tagged)
	if !ok {
		return true, "", fmt.Errorf("image %q names no Go version: pin one in its tag, e.g. golang:1.26-alpine", image)
	}
	m := goImageTag.FindStringSubmatch(tagged.Tag())
	if m == nil {
		return true, "", fmt.Errorf("image %q: tag %q names no Go version, e.g. golang:1.26-alpine", image, tagged.Tag())
	}
	patch := m[2]
	if patch == "" {
		patch = ".0"
	}
	return true, "go" + m[1] + patch, nil
}

// checkGoMod refuses a Go image older than the module's go line or toolchain line. The official images set
// GOTOOLCHAIN=local, so an older Go refuses to build the module instead of fetching a newer toolchain.
func checkGoMod(image, goVersion, goMod, shown string) error {
	data, err := os.ReadFile(goMod)
	if err != nil {
		return err
	}
	f, err := modfile.ParseLax(goMod, data, nil)
	if err != nil {
		return err
	}
	if f.Go != nil && version.Compare(goVersion, "go"+f.Go.Version) < 0 {
		return fmt.Errorf("image %s has %s, older than the go line of %s (go %s): its build refuses to run (GOTOOLCHAIN=local)",
			image, goVersion, shown, f.Go.Version)
	}
	if f.Toolchain != nil && version.Compare(goVersion, f.Toolchain.Name) < 0 {
		return fmt.Errorf("image %s has %s, older than the toolchain line of %s (%s)", image, goVersion, shown, f.Toolchain.Name)
	}
	return nil
}
