package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A program's package is the folder its dependencies are found in, never the whole disk.
func TestPackageRoot(t *testing.T) {
	for in, want := range map[string]string{
		"/srv/app/node_modules/@scope/server/dist/index.js":        "/srv/app/node_modules",
		"/srv/app/node_modules/a/node_modules/b/index.js":          "/srv/app/node_modules",
		"/usr/local/lib/node_modules/@modelcontextprotocol/x/i.js": "/usr/local/lib/node_modules",
		"/opt/venv/bin/mcp-server-time":                            "/opt/venv",
		"/opt/node/bin/node":                                       "/opt/node",
		"/usr/bin/node":                                            "/usr/bin/node", // /usr is read anyway; never "/"
		"/bin/sh":                                                  "/bin/sh",
		"/server.js":                                               "/server.js",
		"/srv/tools/server":                                        "/srv/tools/server",
	} {
		assert.Equal(t, want, packageRoot(in), in)
	}
}

// A script's interpreter is read too: the one its #! line names, and for env the program found on PATH.
func TestInterpreters(t *testing.T) {
	dir := t.TempDir()
	script := func(line string) string {
		p := filepath.Join(dir, "s")
		require.NoError(t, os.WriteFile(p, []byte(line+"\nrest\n"), 0o755))
		return p
	}
	assert.Equal(t, []string{"/bin/sh"}, interpreters(script("#!/bin/sh -e")))
	got := interpreters(script("#!/usr/bin/env -S sh -e"))
	require.Len(t, got, 2)
	assert.Equal(t, "/usr/bin/env", got[0])
	assert.Equal(t, "sh", filepath.Base(got[1]), "env's program, from PATH")
	assert.Empty(t, interpreters(script("no shebang")))
	assert.Empty(t, interpreters(filepath.Join(dir, "missing")))
}

// The command's own files are found, with their package, and a directory among its arguments is not opened.
func TestCommandRead(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "node_modules", "server", "index.js")
	require.NoError(t, os.MkdirAll(filepath.Dir(pkg), 0o755))
	require.NoError(t, os.WriteFile(pkg, []byte("#!/bin/sh\n"), 0o755))
	read, err := commandRead([]string{"sh", pkg, "/", dir})
	require.NoError(t, err)
	assert.Contains(t, read, filepath.Join(dir, "node_modules"))
	assert.NotContains(t, read, "/")
	assert.NotContains(t, read, dir)

	_, err = commandRead([]string{"no-such-mcp-server"})
	assert.ErrorContains(t, err, "no-such-mcp-server")
}

func TestConfigErrors(t *testing.T) {
	_, _, err := Setup(Config{Mode: "maybe"}, []string{"true"})
	assert.ErrorContains(t, err, `--sandbox "maybe"`)
	for _, port := range []string{"https", "0", "70000"} {
		_, _, err = Setup(Config{Mode: ModeAuto, AllowConnect: []string{port}}, []string{"true"})
		assert.ErrorContains(t, err, "--sandbox-allow-connect", port)
	}
	_, _, err = Setup(Config{Mode: ModeAuto, AllowWrite: []string{"/no/such/cache"}}, []string{"true"})
	assert.ErrorContains(t, err, "--sandbox-allow-write /no/such/cache: ")
	box, status, err := Setup(Config{Mode: ModeOff}, []string{"true"})
	require.NoError(t, err)
	assert.Nil(t, box)
	assert.Equal(t, Status{Reason: "turned off (--sandbox off)"}, status)

	var none *Sandbox
	path, args, err := none.Wrap("node", []string{"a"}, "/d", nil)
	require.NoError(t, err)
	assert.Equal(t, "node", path)
	assert.Equal(t, []string{"a"}, args, "no sandbox, no launcher")
}

// A child's command line becomes the launcher's: the policy, then the server by an absolute path, found as exec
// finds it (a relative path with a separator, in the child's directory), and the user's paths writable.
func TestWrap(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "server"), []byte("#!/bin/sh\n"), 0o755))
	box := &Sandbox{launcher: "/proc/self/exe", read: []string{"/usr"}}
	path, args, err := box.Wrap("./server", []string{"--flag"}, dir, []string{"/data/users/u"})
	require.NoError(t, err)
	assert.Equal(t, "/proc/self/exe", path)
	require.Len(t, args, 4)
	assert.Equal(t, LaunchArg, args[0])
	assert.Equal(t, []string{filepath.Join(dir, "server"), "--flag"}, args[2:])
	var p Policy
	require.NoError(t, json.Unmarshal([]byte(args[1]), &p))
	assert.Equal(t, Policy{Read: []string{"/usr"}, Write: []string{dir, "/data/users/u"}}, p)

	_, _, err = box.Wrap("no-such-mcp-server", nil, dir, nil)
	assert.ErrorContains(t, err, "no-such-mcp-server")
}

// The test binary is the launcher here, as streamproxy's main is: for real, or, with SANDBOX_TEST_NO_LANDLOCK set,
// as it answers on a kernel without Landlock.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == LaunchArg {
		err := errNoLandlock
		if os.Getenv("SANDBOX_TEST_NO_LANDLOCK") == "" {
			err = Launch(os.Args[2:])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(126)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Setup runs the launcher once: on this kernel it applies a domain; on one without Landlock, auto runs children
// unconfined and says why, and required refuses to start.
func TestSetupProbesTheKernel(t *testing.T) {
	box, status, err := Setup(Config{Mode: ModeRequired}, []string{"true"})
	require.NoError(t, err)
	require.NotNil(t, box)
	assert.GreaterOrEqual(t, status.ABI, 1, "this machine's kernel has Landlock")

	t.Setenv("SANDBOX_TEST_NO_LANDLOCK", "1")
	box, status, err = Setup(Config{Mode: ModeAuto}, []string{"true"})
	require.NoError(t, err)
	assert.Nil(t, box, "children run unconfined")
	assert.Equal(t, 0, status.ABI)
	assert.Contains(t, status.Reason, "the kernel has no Landlock")
	_, _, err = Setup(Config{Mode: ModeRequired}, []string{"true"})
	assert.ErrorContains(t, err, "--sandbox required: the launcher failed: the kernel has no Landlock")
}
