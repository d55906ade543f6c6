package yaegitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/traefik/paerser/file"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/zip"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/plugintest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The Traefik Plugin Catalog imports a plugin only once its analyzer (github.com/traefik/piceus, pkg/core/scrapper.go
// and yaegi.go) accepts the repository at its latest tag; otherwise it opens an issue in the repository. The checks
// below are that analyzer's, written again from its source, so that a release cannot be refused for a reason a test
// could have seen. docs/release.md says how a release is published.

// refusedRequirements: a root go.mod requirement, direct or indirect, whose path contains one of these refuses the
// plugin (Traefik brings them itself).
var refusedRequirements = []string{
	"github.com/containous/yaegi", "github.com/containous/traefik", "github.com/containous/maesh",
	"github.com/traefik/yaegi", "github.com/traefik/traefik", "github.com/traefik/mesh",
}

// catalogManifest is .traefik.yml as the catalog reads it.
type catalogManifest struct {
	DisplayName string                 `yaml:"displayName"`
	Runtime     string                 `yaml:"runtime"`
	Type        string                 `yaml:"type"`
	Import      string                 `yaml:"import"`
	BasePkg     string                 `yaml:"basePkg"`
	Summary     string                 `yaml:"summary"`
	IconPath    string                 `yaml:"iconPath"`
	BannerPath  string                 `yaml:"bannerPath"`
	UseUnsafe   bool                   `yaml:"useUnsafe"`
	TestData    map[string]interface{} `yaml:"testData"`
}

// checkRequirements refuses a go.mod that requires what Traefik provides.
func checkRequirements(mod *modfile.File) error {
	for _, r := range mod.Require {
		for _, p := range refusedRequirements {
			if strings.Contains(r.Mod.Path, p) {
				return fmt.Errorf("a plugin cannot have a dependence to: %s", r.Mod.Path)
			}
		}
	}
	return nil
}

// loadManifest reads .traefik.yml and checks its required fields and type.
func loadManifest(content []byte) (catalogManifest, error) {
	var m catalogManifest
	if err := yaml.Unmarshal(content, &m); err != nil {
		return m, fmt.Errorf("failed to read manifest content: %w", err)
	}
	if len(m.TestData) > 0 {
		// testData is read again with Traefik's file decoder, which turns every scalar into a string: CreateConfig's
		// result is decoded from that, as from a docker label.
		var typed struct{ TestData map[string]interface{} }
		if err := file.DecodeContent(string(content), ".yaml", &typed); err != nil {
			return m, fmt.Errorf("failed to read testdata from manifest: %w", err)
		}
		m.TestData = typed.TestData
	}
	switch {
	case m.Type == "provider" && m.Runtime == "wasm":
		return m, fmt.Errorf("unsupported type for WASM plugin: %s", m.Type)
	case m.Type != "middleware" && m.Type != "provider":
		return m, fmt.Errorf("unsupported type: %s", m.Type)
	case m.Runtime != "wasm" && m.Import == "":
		return m, errors.New("missing import")
	case m.DisplayName == "":
		return m, errors.New("missing DisplayName")
	case m.Summary == "":
		return m, errors.New("missing Summary")
	case m.TestData == nil:
		return m, errors.New("missing TestData")
	}
	return m, nil
}

// checkImport refuses an import outside the module (the catalog compares them with dashes read as underscores).
func checkImport(imp, modulePath string) error {
	if !strings.HasPrefix(strings.ReplaceAll(imp, "-", "_"), strings.ReplaceAll(modulePath, "-", "_")) {
		return fmt.Errorf("the import %q must be related to the module name %q", imp, modulePath)
	}
	return nil
}

// checkRepository refuses a module path or import outside github.com/<owner>/<repo>, the repository the catalog
// found the plugin in. That repository is taken here from the module path, so the check holds only if the module
// is published at the GitHub repository its path names.
func checkRepository(modulePath, imp string) error {
	parts := strings.Split(modulePath, "/")
	if len(parts) < 3 || parts[0] != "github.com" {
		return fmt.Errorf("the module name (%s) is not a GitHub repository's", modulePath)
	}
	repo := path.Join(parts[:3]...)
	if !strings.HasPrefix(imp, repo) {
		return fmt.Errorf("the import name (%s) doesn't contain the GitHub repository name (%s)", imp, repo)
	}
	return nil
}

// checkTag refuses a tag that is not a full semantic version; the catalog refuses the repository for any such tag.
func checkTag(tag string) error {
	// semver.Canonical drops build metadata and fills in a missing minor or patch: a full version starts with it.
	if !semver.IsValid(tag) || !strings.HasPrefix(tag, semver.Canonical(tag)) {
		return fmt.Errorf("invalid tag: %s (this tag must be removed, see https://go.dev/doc/modules/version-numbers)", tag)
	}
	return nil
}

// git runs git in the repository.
func git(t *testing.T, root string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err, "git %s", strings.Join(args, " "))
	return out
}

// repoFile is a file of the working tree for zip.Create.
type repoFile struct {
	path, abs string
	info      os.FileInfo
}

func (f repoFile) Path() string                 { return f.path }
func (f repoFile) Lstat() (os.FileInfo, error)  { return f.info, nil }
func (f repoFile) Open() (io.ReadCloser, error) { return os.Open(f.abs) }

// moduleGopath lays the module out as the catalog does: the module proxy's zip of it (made here by the proxy's own
// rules, from the files a commit of the working tree would hold: tracked ones and new ones git does not ignore),
// extracted to <GOPATH>/src/<module path>. It returns the GOPATH and the zip's file names.
func moduleGopath(t *testing.T, root, modulePath string) (string, []string) {
	var files []zip.File
	list := strings.TrimSuffix(string(git(t, root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")), "\x00")
	for _, p := range strings.Split(list, "\x00") {
		abs := filepath.Join(root, filepath.FromSlash(p))
		info, err := os.Lstat(abs)
		if errors.Is(err, os.ErrNotExist) { // deleted, not yet committed
			continue
		}
		require.NoError(t, err)
		files = append(files, repoFile{path: p, abs: abs, info: info})
	}
	checked, err := zip.CheckFiles(files)
	require.NoError(t, err, "the module proxy would not serve this module")
	v := module.Version{Path: modulePath, Version: "v0.0.0"}
	var buf bytes.Buffer
	require.NoError(t, zip.Create(&buf, v, files))
	zipPath := filepath.Join(t.TempDir(), "module.zip")
	require.NoError(t, os.WriteFile(zipPath, buf.Bytes(), 0o644))

	gopath := t.TempDir()
	require.NoError(t, zip.Unzip(filepath.Join(gopath, "src", filepath.FromSlash(modulePath)), v, zipPath))
	return gopath, checked.Valid
}

// loadInYaegi runs the plugin as the catalog does before it accepts it: a Yaegi interpreter with the standard
// library's symbols only and no environment, import, CreateConfig, testData decoded into the configuration, and New,
// all within 10 s, which must return an http.Handler. It returns the interpreter, so that the test can stop the
// plugin's background work.
func loadInYaegi(gopath string, m catalogManifest) (i *interp.Interpreter, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic from yaegi: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	i = interp.New(interp.Options{GoPath: gopath})
	if err := i.Use(stdlib.Symbols); err != nil {
		return nil, fmt.Errorf("load of stdlib symbols: %w", err)
	}
	if _, err := i.EvalWithContext(ctx, fmt.Sprintf("import %q", m.Import)); err != nil {
		return nil, fmt.Errorf("the plugin does not load within 10 s, or fails to: %w", err)
	}
	pkg := m.BasePkg
	if pkg == "" {
		pkg = strings.ReplaceAll(path.Base(m.Import), "-", "_")
	}
	vConfig, err := i.EvalWithContext(ctx, pkg+".CreateConfig()")
	if err != nil {
		return i, fmt.Errorf("failed to eval `CreateConfig` function: %w", err)
	}
	// The catalog decodes testData with the same mapstructure settings as Traefik decodes a middleware's options.
	if err := plugintest.DecodeLikeTraefik(vConfig.Interface(), m.TestData); err != nil {
		return i, fmt.Errorf("plugin: failed to decode configuration: %w", err)
	}
	fnNew, err := i.EvalWithContext(ctx, pkg+".New")
	if err != nil {
		return i, fmt.Errorf("failed to eval `New` function: %w", err)
	}
	if err := checkNewSignature(fnNew.Type(), vConfig.Type()); err != nil {
		return i, fmt.Errorf("the signature of the function `New` is invalid: %w", err)
	}

	done := make(chan error, 1) // buffered: New may still return after the deadline
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("the function `New` panicked: %v", r)
			}
		}()
		next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
		out := fnNew.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(next), vConfig, reflect.ValueOf("test")})
		if e := out[1].Interface(); e != nil {
			done <- fmt.Errorf("failed to create a new plugin instance: %w", e.(error))
			return
		}
		if _, ok := out[0].Interface().(http.Handler); !ok {
			done <- fmt.Errorf("invalid handler type: %T", out[0].Interface())
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return i, err
	case <-ctx.Done():
		return i, fmt.Errorf("the function `New` has failed: %w", ctx.Err())
	}
}

// checkNewSignature wants New(context.Context, http.Handler, <CreateConfig's type>, string) (http.Handler, error).
func checkNewSignature(fn, config reflect.Type) error {
	ctxType := reflect.TypeOf((*context.Context)(nil)).Elem()
	handlerType := reflect.TypeOf((*http.Handler)(nil)).Elem()
	errType := reflect.TypeOf((*error)(nil)).Elem()
	switch {
	case fn.NumIn() != 4:
		return fmt.Errorf("New takes %d arguments, not 4", fn.NumIn())
	case !fn.In(0).Implements(ctxType):
		return errors.New("the 1st argument must have the type context.Context")
	case !fn.In(1).Implements(handlerType):
		return errors.New("the 2nd argument must have the type http.Handler")
	case !fn.In(2).AssignableTo(config):
		return errors.New("the 3rd argument must have the same type as the Config structure")
	case fn.In(3).Kind() != reflect.String:
		return errors.New("the 4th argument must have the type string")
	case fn.NumOut() != 2:
		return fmt.Errorf("New returns %d values, not 2", fn.NumOut())
	case !fn.Out(0).Implements(handlerType):
		return errors.New("the 1st result must have the type http.Handler")
	case !fn.Out(1).Implements(errType):
		return errors.New("the 2nd result must have the type error")
	}
	return nil
}

// TestCatalogAnalyzer applies the catalog's checks to this repository.
func TestCatalogAnalyzer(t *testing.T) {
	root := testenv.RepoRoot(t)
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	mod, err := modfile.Parse("go.mod", goMod, nil)
	require.NoError(t, err)
	modulePath := mod.Module.Mod.Path
	content, err := os.ReadFile(filepath.Join(root, ".traefik.yml"))
	require.NoError(t, err)
	m, err := loadManifest(content)
	require.NoError(t, err, ".traefik.yml")

	t.Run("go.mod requires nothing Traefik provides", func(t *testing.T) {
		require.NoError(t, checkRequirements(mod))
	})

	t.Run("manifest", func(t *testing.T) {
		assert.Equal(t, "middleware", m.Type)
		assert.Contains(t, []string{"", "yaegi"}, m.Runtime, "the catalog runs a Yaegi plugin's check")
		assert.False(t, m.UseUnsafe, "the catalog skips the Yaegi check of a plugin that uses unsafe")
		for _, img := range []string{m.IconPath, m.BannerPath} {
			if img != "" && !strings.Contains(img, "://") {
				assert.FileExists(t, filepath.Join(root, filepath.FromSlash(img)), "the catalog shows it from the tag")
			}
		}
		// The catalog shows the repository's README and fails without one.
		assert.FileExists(t, filepath.Join(root, "README.md"))
	})

	t.Run("import in the module, module at its GitHub repository", func(t *testing.T) {
		require.NoError(t, checkImport(m.Import, modulePath))
		require.NoError(t, checkRepository(modulePath, m.Import))
	})

	t.Run("every tag is a semantic version", func(t *testing.T) {
		for _, tag := range strings.Fields(string(git(t, root, "tag", "--list"))) {
			assert.NoError(t, checkTag(tag))
		}
	})

	t.Run("Yaegi loads the module zip and New returns an http.Handler", func(t *testing.T) {
		gopath, files := moduleGopath(t, root, modulePath)
		assert.Contains(t, files, "plugin/middleware.go")
		assert.Contains(t, files, "LICENSE", "a catalog plugin is public code: its licence travels with it")
		for _, f := range files {
			assert.False(t, strings.HasPrefix(f, "plugin/yaegitest/"), "nested modules are not in the zip: %s", f)
		}
		i, err := loadInYaegi(gopath, m)
		if i != nil {
			// testData's issuer is unreachable: New returns at once, its key loading goes on in the background.
			t.Cleanup(func() { _, _ = i.Eval("plugin.registry.stopAll()") })
		}
		require.NoError(t, err)
	})
}

// TestCatalogAnalyzerRefuses shows that each check refuses what the catalog refuses, starting with the go.mod this
// repository had before the Yaegi tests moved to their own module.
func TestCatalogAnalyzerRefuses(t *testing.T) {
	t.Run("go.mod", func(t *testing.T) {
		goMod, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "go.mod"))
		require.NoError(t, err)
		for _, line := range []string{
			"github.com/traefik/yaegi v0.16.1", // the old go.mod's requirement
			"github.com/traefik/traefik/v3 v3.6.12 // indirect",
			"github.com/traefik/mesh v1.4.8 // indirect",
			"github.com/containous/yaegi v0.9.0 // indirect",
		} {
			mod, err := modfile.Parse("go.mod", []byte(string(goMod)+"\nrequire "+line+"\n"), nil)
			require.NoError(t, err)
			assert.EqualError(t, checkRequirements(mod), "a plugin cannot have a dependence to: "+strings.Fields(line)[0])
		}
	})

	t.Run("manifest", func(t *testing.T) {
		const base = "displayName: X\ntype: middleware\nimport: github.com/o/r/plugin\nsummary: s\n"
		for yml, want := range map[string]string{
			base + "testData:\n  a: 1\n": "",
			base:                         "missing TestData",
			"type: middleware\nimport: i\nsummary: s\ntestData: {}\n":             "missing DisplayName",
			"displayName: X\ntype: middleware\nimport: i\ntestData: {}\n":         "missing Summary",
			"displayName: X\ntype: middleware\nsummary: s\ntestData: {}\n":        "missing import",
			"displayName: X\ntype: plugin\nimport: i\nsummary: s\ntestData: {}\n": "unsupported type: plugin",
		} {
			_, err := loadManifest([]byte(yml))
			if want == "" {
				assert.NoError(t, err, yml)
			} else {
				assert.EqualError(t, err, want, yml)
			}
		}
	})

	t.Run("testData is decoded as strings, as the catalog does", func(t *testing.T) {
		m, err := loadManifest([]byte("displayName: X\ntype: middleware\nimport: i\nsummary: s\ntestData:\n  n: 30\n  b: true\n  l: [a, b]\n"))
		require.NoError(t, err)
		assert.Equal(t, map[string]interface{}{"n": "30", "b": "true", "l": []interface{}{"a", "b"}}, m.TestData)
	})

	t.Run("import and module path", func(t *testing.T) {
		assert.Error(t, checkImport("github.com/other/repo/plugin", "github.com/mcp-oauth-gateway/gateway"))
		assert.NoError(t, checkImport("github.com/o/my_plugin/x", "github.com/o/my-plugin"), "dashes match underscores")
		assert.Error(t, checkRepository("gitlab.com/o/r", "gitlab.com/o/r/plugin"))
		assert.Error(t, checkRepository("github.com/o", "github.com/o/plugin"))
		assert.Error(t, checkRepository("github.com/o/r", "example.com/o/r/plugin"))
	})

	t.Run("tags", func(t *testing.T) {
		for _, tag := range []string{"v1.2.3", "v0.1.0-rc.1", "v1.0.0+build.5"} {
			assert.NoError(t, checkTag(tag))
		}
		for _, tag := range []string{"v1.0", "v1", "1.0.0", "latest", "plugin-v1.0.0"} {
			assert.Error(t, checkTag(tag))
		}
	})
}
