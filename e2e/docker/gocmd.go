package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// goEnv is this machine's Go: the binary and the caches the replayed Go commands use.
type goEnv struct {
	Binary                      string
	GOCACHE, GOMODCACHE, GOPATH string
}

// hostGo asks the go command on PATH where its caches are.
func hostGo() (goEnv, error) {
	bin, err := exec.LookPath("go")
	if err != nil {
		return goEnv{}, err
	}
	out, err := exec.Command(bin, "env", "-json", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		return goEnv{}, fmt.Errorf("go env: %w", err)
	}
	g := goEnv{Binary: bin}
	return g, json.Unmarshal(out, &g)
}

// call is one simple command of a RUN line, expanded as the shell would.
type call struct {
	env  []string // its own assignments, CGO_ENABLED=0 go build ...
	args []string
}

// Go subcommands this test runs. They read the laid-out files and write only under the stage's root or the caches;
// others (go install, go generate, go run, go mod tidy) would need more of the image or the network.
var goSubcommands = map[string]bool{"build": true, "vet": true, "list": true, "version": true, "env": true,
	"mod download": true, "mod verify": true}

// Shell commands that change what a later command sees (directory, environment) in ways this test does not follow.
var stateChanging = map[string]bool{"cd": true, "pushd": true, "popd": true, "source": true, ".": true, "eval": true,
	"set": true, "unset": true, "export": true, "declare": true, "typeset": true, "readonly": true, "local": true}

func (r *replay) run(ctx context.Context, s *stage, c *instructions.RunCommand) error {
	calls, err := runCalls(c, s.env)
	if err != nil {
		return err
	}
	var goCalls []call
	for _, cl := range calls {
		if isGo(cl.args) {
			goCalls = append(goCalls, cl)
		}
	}
	if len(goCalls) == 0 {
		r.o.Logf("  RUN without a Go command: not modelled")
		return nil
	}
	for _, m := range instructions.GetMounts(c) {
		if m.Type == instructions.MountTypeBind {
			return errors.New("RUN --mount=type=bind brings in files that no COPY lays out: not modelled by this test, extend it first")
		}
	}
	for _, cl := range calls {
		if len(cl.args) > 0 && stateChanging[cl.args[0]] {
			return fmt.Errorf("%q in a RUN line with a Go command is not followed by this test: use WORKDIR and ENV", cl.args[0])
		}
	}
	if !s.goImage {
		return fmt.Errorf("FROM %s is not the official Go image (golang:<version>): which Go runs here cannot be checked", s.base)
	}
	if r.host.Binary == "" {
		if r.host, err = hostGo(); err != nil {
			return err
		}
	}
	for _, cl := range goCalls {
		if err := r.runGo(ctx, s, cl); err != nil {
			return err
		}
	}
	return nil
}

func isGo(args []string) bool {
	return len(args) > 0 && (args[0] == "go" || strings.HasSuffix(args[0], "/go"))
}

// runCalls splits a RUN line into its simple commands: the exec form is one, the shell form is parsed as sh would.
func runCalls(c *instructions.RunCommand, env []string) ([]call, error) {
	if len(c.Files) > 0 {
		return nil, errors.New("RUN with a here-document is not modelled by this test: extend it first")
	}
	if !c.PrependShell {
		return []call{{args: c.CmdLine}}, nil
	}
	f, err := syntax.NewParser().Parse(strings.NewReader(strings.Join(c.CmdLine, " ")), "RUN")
	if err != nil {
		return nil, err
	}
	cfg := &expand.Config{Env: expand.ListEnviron(env...)}
	var calls []call
	syntax.Walk(f, func(n syntax.Node) bool {
		if d, ok := n.(*syntax.DeclClause); ok {
			// export, declare, readonly: kept as a command by that name, for the state check.
			calls = append(calls, call{args: []string{d.Variant.Value}})
			return true
		}
		ce, ok := n.(*syntax.CallExpr)
		if !ok || err != nil {
			return err == nil
		}
		var cl call
		for _, a := range ce.Assigns {
			v, e := expand.Literal(cfg, a.Value)
			if e != nil {
				err = e
				return false
			}
			cl.env = append(cl.env, a.Name.Value+"="+v)
		}
		if cl.args, err = expand.Fields(cfg, ce.Args...); err != nil {
			return false
		}
		calls = append(calls, cl)
		return true
	})
	return calls, err
}

func (r *replay) runGo(ctx context.Context, s *stage, cl call) error {
	sub := ""
	if len(cl.args) > 1 {
		sub = cl.args[1]
	}
	if sub == "mod" && len(cl.args) > 2 {
		sub += " " + cl.args[2]
	}
	if !goSubcommands[sub] {
		return fmt.Errorf("go %s is not modelled by this test (it runs go %s): extend it first", sub, strings.Join(slices.Sorted(maps.Keys(goSubcommands)), ", go "))
	}
	s.ranGo = true
	if goMod := findGoMod(s.root, s.workdir); goMod != "" && s.goVersion != "" {
		if err := checkGoMod(s.base, s.goVersion, filepath.Join(s.root, goMod), goMod); err != nil {
			r.problem(fmt.Errorf("%s: %w", s.label, err))
		}
	}
	cmd := exec.CommandContext(ctx, r.host.Binary, rooted(cl.args[1:], s.root)...)
	cmd.Dir = filepath.Join(s.root, s.workdir)
	cmd.Env = r.processEnv(s, cl.env)
	r.o.Logf("  RUN %s", shellJoin(cl.env, cl.args))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s(the stage holds only what its COPY lines take from the build context, %s)",
			shellJoin(nil, cl.args), err, out, r.ignored)
	}
	return nil
}

// findGoMod is the go.mod the go command would use in dir: the nearest one at or above it in the image.
func findGoMod(root, dir string) string {
	for d := dir; ; d = path.Dir(d) {
		p := path.Join(d, "go.mod")
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return p
		}
		if d == "/" {
			return ""
		}
	}
}

// rooted maps the image's absolute paths in arguments (-o /out/app, -o=/out/app) into the stage's root.
func rooted(args []string, root string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch flag, val, ok := strings.Cut(a, "="); {
		case strings.HasPrefix(a, "/"):
			a = filepath.Join(root, a)
		case ok && strings.HasPrefix(flag, "-") && strings.HasPrefix(val, "/"):
			a = flag + "=" + filepath.Join(root, val)
		}
		out[i] = a
	}
	return out
}

// processEnv is the container's environment for a Go command (the Dockerfile's ARG and ENV, the RUN line's own
// assignments) with this machine's caches, no network (modules come from the local cache only) and no local Go
// configuration or toolchain switch.
func (r *replay) processEnv(s *stage, own []string) []string {
	env := append(append([]string(nil), s.env...), own...)
	for _, kv := range []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir(),
		"GOCACHE=" + r.host.GOCACHE, "GOMODCACHE=" + r.host.GOMODCACHE, "GOPATH=" + r.host.GOPATH,
		"GOPROXY=off", "GOENV=off", "GOTOOLCHAIN=local",
	} {
		k, v, _ := strings.Cut(kv, "=")
		env = setEnv(env, k, v)
	}
	return env
}

// shellJoin writes a command back as sh would read it, for messages.
func shellJoin(assigns, args []string) string {
	quote := func(s string) string {
		if q, err := syntax.Quote(s, syntax.LangPOSIX); err == nil {
			return q
		}
		return s
	}
	var words []string
	for _, kv := range assigns {
		k, v, _ := strings.Cut(kv, "=")
		words = append(words, k+"="+quote(v))
	}
	for _, a := range args {
		words = append(words, quote(a))
	}
	return strings.Join(words, " ")
}
