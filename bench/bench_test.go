package main

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary serve the edge backend when the suite starts it as a child (see serveBackend).
func TestMain(m *testing.M) {
	if addr := os.Getenv(backendEnv); addr != "" {
		if err := serveBackend(addr); err != nil {
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// TestSmoke runs every benchmark for about a second so the benchmark code cannot rot. It checks that each section
// ran and produced numbers; it asserts nothing about speed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the smoke suite starts Traefik, Redis, Node servers and proxies; skipped with -short")
	}
	wd, err := os.Getwd()
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.Chdir(wd) }) // runSuite moves to the repository root

	st, err := runSuite(smokeConfig())
	require.NoError(t, err)
	require.NotEmpty(t, st.Sections)
	for _, s := range st.Sections {
		t.Run(s.Name, func(t *testing.T) {
			if errors.Is(s.Err, errSkipped) && os.Getenv("CI") == "" {
				t.Skipf("section %s: %v", s.Name, s.Err)
			}
			require.NoError(t, s.Err, "section %s", s.Name)
			assert.NotEmpty(t, s.Numbers, "section %s measured nothing", s.Name)
			for name, v := range s.Numbers {
				assert.Greater(t, v, 0.0, "%s", name)
			}
		})
	}
	md := st.Markdown()
	assert.Contains(t, md, "## Machine and versions")
	assert.Contains(t, md, "| target |")
}
