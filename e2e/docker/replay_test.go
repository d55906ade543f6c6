package docker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func check(t *testing.T, contextDir, dockerfile string) error {
	t.Helper()
	return Check(context.Background(), Options{
		Context: contextDir, Dockerfile: dockerfile, WorkDir: t.TempDir(), Logf: t.Logf,
	})
}

// The fixtures build testdata/app, whose command imports a package beside it.
func TestFixtures(t *testing.T) {
	for _, tc := range []struct {
		dockerfile string
		refusal    []string // every one must be in the error; none: the build must pass
	}{
		{dockerfile: "builds.Dockerfile"},
		{dockerfile: "copies-too-little.Dockerfile", refusal: []string{"go build", "example.com/app/lib"}},
		{dockerfile: "old-go.Dockerfile", refusal: []string{"golang:1.25-alpine has go1.25.0", "go 1.26.0", "GOTOOLCHAIN=local"}},
		{dockerfile: "ignored.Dockerfile", refusal: []string{"example.com/app/lib"}},
		{dockerfile: "wrong-binary.Dockerfile", refusal: []string{"/out/server: not found in stage build"}},
		{dockerfile: "unpinned.Dockerfile", refusal: []string{`"golang:alpine"`, "names no Go version"}},
		{dockerfile: "bind-mount.Dockerfile", refusal: []string{"--mount=type=bind", "not modelled"}},
	} {
		t.Run(tc.dockerfile, func(t *testing.T) {
			err := check(t, filepath.Join("testdata", "app"), filepath.Join("testdata", tc.dockerfile))
			if len(tc.refusal) == 0 {
				if err != nil {
					t.Fatalf("refused a Dockerfile that builds: %v", err)
				}
				return
			}
			requireRefusal(t, err, tc.refusal...)
		})
	}
}

// A RUN line that changes directory or environment before its Go command is refused, not half followed.
func TestRunRefusesStateChanges(t *testing.T) {
	for _, run := range []string{"cd cmd/app && go build .", "export CGO_ENABLED=0 && go build ./cmd/app"} {
		dockerfile := filepath.Join(t.TempDir(), "Dockerfile")
		data := "FROM golang:1.26-alpine\nWORKDIR /src\nCOPY . .\nRUN " + run + "\n"
		if err := os.WriteFile(dockerfile, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		requireRefusal(t, check(t, filepath.Join("testdata", "app"), dockerfile), "is not followed by this test")
	}
}

func TestGoImageVersion(t *testing.T) {
	for image, want := range map[string]string{
		"golang:1.26-alpine":                          "go1.26.0",
		"golang:1.26":                                 "go1.26.0",
		"golang:1.26.3-bookworm":                      "go1.26.3",
		"docker.io/library/golang:1.27rc1-alpine3.22": "go1.27rc1",
		"golang:1.26-alpine@sha256:" + sixtyFourHex:   "go1.26.0",
	} {
		isGo, got, err := goImageVersion(image)
		if err != nil || !isGo || got != want {
			t.Errorf("%s: got %v %q %v, want %q", image, isGo, got, err, want)
		}
	}
	for _, image := range []string{"golang", "golang:latest", "golang:alpine", "golang@sha256:" + sixtyFourHex} {
		if isGo, _, err := goImageVersion(image); !isGo || err == nil {
			t.Errorf("%s: got %v %v, want a Go image without a version", image, isGo, err)
		}
	}
	for _, image := range []string{"alpine:3.22", "node:22-bookworm-slim", "ghcr.io/astral-sh/uv:0.9", "example.com/golang:1.26"} {
		if isGo, _, err := goImageVersion(image); isGo || err != nil {
			t.Errorf("%s: got %v %v, want not a Go image", image, isGo, err)
		}
	}
}

const sixtyFourHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
